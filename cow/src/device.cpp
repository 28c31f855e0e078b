#include <blksnap/backend.hpp>
#include <blksnap/device.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <fstream>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

namespace blksnap {

std::string DeviceId::str() const {
    return std::to_string(major) + ":" + std::to_string(minor);
}

DeviceId block_device_id(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0)
        throw_errno(context("stat", path));
    if (!S_ISBLK(st.st_mode))
        throw Error(ENOTBLK, path);
    return {::major(st.st_rdev), ::minor(st.st_rdev)};
}

DeviceId KernelBackend::device_id(const std::string& device) {
    return block_device_id(device);
}

std::string block_device_path(DeviceId id, const std::string& sysfs) {
    std::ifstream uevent(sysfs + "/dev/block/" + id.str() + "/uevent");
    const std::string key = "DEVNAME=";
    for (std::string line; std::getline(uevent, line);) {
        if (line.starts_with(key))
            return "/dev/" + line.substr(key.size());
    }
    return "/dev/block/" + id.str();
}

std::uint64_t size_of(int fd, const std::string& path) {
    struct stat st;
    if (::fstat(fd, &st) != 0)
        throw_errno(context("stat", path));
    if (!S_ISBLK(st.st_mode))
        return static_cast<std::uint64_t>(st.st_size);
    std::uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0)
        throw_errno(context("BLKGETSIZE64", path));
    return size;
}

} // namespace blksnap
