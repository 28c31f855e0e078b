// blksnapfs: blksnap snapshots as files (see blksnapfs(8)).
#include "daemon.hpp"
#include "fuse_session.hpp"
#include "kernel_source.hpp"
#include "log.hpp"

#include <blksnap/error.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>

namespace {

constexpr unsigned max_threads = 32;

int run(int argc, char** argv) {
    using namespace blksnapfs;
    FuseArgs args(argc, argv);
    Options options;
    try {
        options = parse_options(args.get());
    } catch (const UsageError& e) {
        std::cerr << "blksnapfs: " << e.what() << "\n" << usage_text("blksnapfs");
        return 2;
    }
    if (options.help) {
        std::cout << usage_text("blksnapfs");
        return 0;
    }
    if (options.version) {
        std::cout << "blksnapfs " << BLKSNAP_VERSION << "\n";
        return 0;
    }
    gid_t gid = 0;
    if (!options.group.empty()) {
        const auto found = resolve_group(options.group);
        if (!found) {
            std::cerr << "blksnapfs: --group " << options.group << ": no such group\n";
            return 2;
        }
        gid = *found;
    }

    // Read buffers of 1 MiB come and go with every FUSE read (libfuse frees
    // each reply): keep them in the heap, reused, rather than mapped and
    // unmapped (and page-faulted in) each time.
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);

    // An open image.raw holds two or three descriptors, and the limits on
    // open files are each user's (root's not counted): the soft limit on
    // descriptors (1024 by default) must not be what refuses root's opens
    // once other users hold theirs. The daemon waits with poll(), never select().
    if (rlimit nofile{};
        getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    KernelSource source; // throws when the module is not loaded
    // The default mount point is made once the module is known to be there:
    // a failed start leaves nothing behind.
    std::error_code ec;
    if (!options.mountpoint_given)
        std::filesystem::create_directories(options.mountpoint, ec);
    options.mountpoint = std::filesystem::absolute(options.mountpoint).lexically_normal().string();
    if (options.mountpoint.size() > 1 && options.mountpoint.back() == '/')
        options.mountpoint.pop_back();
    Daemon daemon(source, options);
    daemon.gid = gid;
    // The kernel checks the files' modes (file_mode()): with -o allow_other,
    // other users see the tree but read only what their group is given.
    args.add("-ofsname=blksnapfs,subtype=blksnapfs,default_permissions");
    FuseMount mount(args.get(), operations(), &daemon, options.mountpoint);
    if (fuse_daemonize(options.foreground ? 1 : 0) != 0)
        return 1;
    // In the background stderr is gone: syslog from now on.
    if (!options.foreground)
        log_to(LogTarget::syslog_only);
    log(LOG_INFO, std::string("blksnapfs ") + BLKSNAP_VERSION + " started on " +
                      options.mountpoint + (options.writable ? " (writable)" : ""));
    int ended;
    {
        TreeWatcher watcher(daemon.tree); // started after the fork of daemonizing
        ended = mount.loop(max_threads);
    }
    log(ended < 0 ? LOG_ERR : LOG_INFO, stop_message(ended, options.mountpoint));
    return exit_status(ended);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        blksnapfs::log(LOG_ERR, e.what());
        return 1;
    }
}
