// RAII pieces of a libfuse file system's life: the arguments, the fuse
// object, its mount, the signal handlers and the loop configuration.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse3/fuse.h>

#include <string>

namespace blksnapfs {

class FuseArgs {
public:
    FuseArgs(int argc, char** argv) : args_(FUSE_ARGS_INIT(argc, argv)) {}
    ~FuseArgs() { fuse_opt_free_args(&args_); }
    FuseArgs(const FuseArgs&) = delete;
    FuseArgs& operator=(const FuseArgs&) = delete;
    fuse_args& get() { return args_; }
    void add(const std::string& arg) { fuse_opt_add_arg(&args_, arg.c_str()); }

private:
    fuse_args args_;
};

// A mounted file system; unmounted and freed on destruction. Throws
// std::runtime_error when fuse_new or the mount fails.
class FuseMount {
public:
    FuseMount(fuse_args& args, const fuse_operations& ops, void* private_data,
              const std::string& mountpoint);
    ~FuseMount();
    FuseMount(const FuseMount&) = delete;
    FuseMount& operator=(const FuseMount&) = delete;

    // Serves requests on up to MAX_THREADS threads until unmounted or
    // signalled; returns 0 after an unmount, the number of the signal that
    // stopped it (SIGTERM, SIGINT, SIGHUP), or -errno on failure.
    int loop(unsigned max_threads);

private:
    fuse* fuse_;
    bool mounted_ = false;
    bool signals_ = false;
};

// The exit status of the daemon after loop() returned LOOP_RESULT: 0 for a
// clean end (an unmount, or SIGTERM, SIGINT or SIGHUP, as systemd and users
// stop it: the file system is unmounted then), 1 for a failure.
int exit_status(int loop_result);
// What the log says when the loop on MOUNTPOINT returned LOOP_RESULT.
std::string stop_message(int loop_result, const std::string& mountpoint);

} // namespace blksnapfs
