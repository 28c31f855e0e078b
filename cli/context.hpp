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
    Context(BackendFactory factory, std::ostream& out) : factory_(std::move(factory)), out_(out) {}

    KernelBackend& kernel();
    std::ostream& out() { return out_; }
    // One JSON document on one line.
    void print(const nlohmann::ordered_json& doc);

private:
    BackendFactory factory_;
    std::shared_ptr<KernelBackend> kernel_;
    std::ostream& out_;
};

} // namespace blksnap::cli
