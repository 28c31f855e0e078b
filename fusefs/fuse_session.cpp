#include "fuse_session.hpp"

#include <csignal>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace blksnapfs {

FuseMount::FuseMount(fuse_args& args, const fuse_operations& ops, void* private_data,
                     const std::string& mountpoint)
    : fuse_(fuse_new(&args, &ops, sizeof(ops), private_data)) {
    if (!fuse_)
        throw std::runtime_error("cannot set up FUSE (bad -o option?)");
    if (fuse_mount(fuse_, mountpoint.c_str()) != 0) {
        fuse_destroy(fuse_);
        throw std::runtime_error("cannot mount on " + mountpoint);
    }
    mounted_ = true;
}

FuseMount::~FuseMount() {
    if (signals_)
        fuse_remove_signal_handlers(fuse_get_session(fuse_));
    if (mounted_)
        fuse_unmount(fuse_);
    fuse_destroy(fuse_);
}

int FuseMount::loop(unsigned max_threads) {
    if (fuse_set_signal_handlers(fuse_get_session(fuse_)) != 0)
        throw std::runtime_error("cannot set signal handlers");
    signals_ = true;
    std::unique_ptr<fuse_loop_config, decltype(&fuse_loop_cfg_destroy)> cfg(fuse_loop_cfg_create(),
                                                                            fuse_loop_cfg_destroy);
    if (!cfg)
        throw std::bad_alloc();
    fuse_loop_cfg_set_max_threads(cfg.get(), max_threads);
    fuse_loop_cfg_set_idle_threads(cfg.get(), 4);
    return fuse_loop_mt(fuse_, cfg.get());
}

int exit_status(int loop_result) {
    switch (loop_result) {
    case 0:
    case SIGTERM:
    case SIGINT:
    case SIGHUP:
        return 0;
    default:
        return 1;
    }
}

std::string stop_message(int loop_result, const std::string& mountpoint) {
    if (loop_result == 0)
        return "stopped: " + mountpoint + " was unmounted";
    if (loop_result > 0) {
        const char* abbrev = sigabbrev_np(loop_result);
        return std::string("stopped by ") +
               (abbrev ? std::string("SIG") + abbrev : "signal " + std::to_string(loop_result)) +
               ": unmounting " + mountpoint;
    }
    return std::string("stopped on a failure (") + std::strerror(-loop_result) + "): unmounting " +
           mountpoint;
}

} // namespace blksnapfs
