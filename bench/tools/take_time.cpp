// blksnap-take-time: the take rows of `make bench` timed inside one
// process, so that no program start is counted on either side.
//
//   blksnap-take-time take ROUNDS STORAGE DEVICE...
//       a snapshot of the DEVICEs (difference storage at STORAGE) created,
//       taken and destroyed ROUNDS times; prints the milliseconds of each
//       take (libblksnap's Snapshot::take(): the ioctl, nothing else)
//   blksnap-take-time freeze ROUNDS MOUNTPOINT...
//       FIFREEZE of each file system, then FITHAW of each, ROUNDS times;
//       prints the milliseconds of each round
//
// One line: the figures of the rounds, separated by spaces.
#include <blksnap/error.hpp>
#include <blksnap/linux_backend.hpp>
#include <blksnap/snapshot.hpp>
#include <blksnap/unique_fd.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <linux/fs.h>
#include <string>
#include <sys/ioctl.h>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<double> takes(int rounds, const std::string& storage,
                          const std::vector<std::string>& devices) {
    blksnap::LinuxBackend backend(blksnap::detect_interception());
    std::vector<double> out;
    for (int r = 0; r < rounds; ++r) {
        auto snap = blksnap::Snapshot::create(backend, storage, std::uint64_t{1} << 30, devices);
        const auto t0 = Clock::now();
        snap.take();
        out.push_back(ms_since(t0));
        snap.destroy();
    }
    return out;
}

void fs_ioctl(const blksnap::UniqueFd& fd, unsigned long request, const char* what,
              const std::string& mnt) {
    if (::ioctl(fd.get(), request, 0) != 0)
        blksnap::throw_errno(blksnap::context(what, mnt));
}

std::vector<double> freezes(int rounds, const std::vector<std::string>& mounts) {
    std::vector<blksnap::UniqueFd> fds;
    for (const auto& m : mounts)
        fds.push_back(blksnap::open_fd(m, O_RDONLY | O_DIRECTORY));
    std::vector<double> out;
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = Clock::now();
        for (std::size_t i = 0; i < fds.size(); ++i)
            fs_ioctl(fds[i], FIFREEZE, "FIFREEZE", mounts[i]);
        for (std::size_t i = 0; i < fds.size(); ++i)
            fs_ioctl(fds[i], FITHAW, "FITHAW", mounts[i]);
        out.push_back(ms_since(t0));
    }
    return out;
}

int usage() {
    std::fprintf(stderr, "usage: blksnap-take-time take ROUNDS STORAGE DEVICE...\n"
                         "       blksnap-take-time freeze ROUNDS MOUNTPOINT...\n");
    return 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4)
        return usage();
    const std::string mode = argv[1];
    const int rounds = std::atoi(argv[2]);
    if (rounds <= 0)
        return usage();
    try {
        std::vector<double> ms;
        if (mode == "take" && argc >= 5)
            ms = takes(rounds, argv[3], std::vector<std::string>(argv + 4, argv + argc));
        else if (mode == "freeze")
            ms = freezes(rounds, std::vector<std::string>(argv + 3, argv + argc));
        else
            return usage();
        for (std::size_t i = 0; i < ms.size(); ++i)
            std::printf("%s%.3f", i ? " " : "", ms[i]);
        std::printf("\n");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "blksnap-take-time: %s\n", e.what());
        return 1;
    }
    return 0;
}
