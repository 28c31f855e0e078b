// What every command needs: the output streams and the kernel, opened only
// when a command runs (so that -h and usage errors work without a module).
#pragma once

#include <blksnap/backend.hpp>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

namespace blksnap::cli {

// Opens the kernel interface; called at most once, when a command runs.
using BackendFactory = std::function<std::shared_ptr<KernelBackend>()>;

class Context {
public:
    Context(BackendFactory factory, std::ostream& out, std::ostream& err, bool err_is_tty = false)
        : factory_(std::move(factory)), out_(out), err_(err), err_is_tty_(err_is_tty) {}

    KernelBackend& kernel();
    std::ostream& out() { return out_; }
    // Messages and progress; progress is drawn only on a terminal.
    std::ostream& err() { return err_; }
    bool err_is_tty() const { return err_is_tty_; }
    // One JSON document on one line.
    void print(const nlohmann::ordered_json& doc);

private:
    BackendFactory factory_;
    std::shared_ptr<KernelBackend> kernel_;
    std::ostream& out_;
    std::ostream& err_;
    bool err_is_tty_;
};

} // namespace blksnap::cli
