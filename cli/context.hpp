// What every command needs: the output streams and the kernel, opened only
// when a command runs (so that -h and usage errors work without a module).
#pragma once

#include <blksnap/backend.hpp>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>

namespace blksnap::cli {

using BackendFactory = std::function<std::unique_ptr<KernelBackend>()>;

class Context {
public:
    Context(BackendFactory factory, std::ostream& out) : factory_(std::move(factory)), out_(out) {}

    KernelBackend& kernel();
    std::ostream& out() { return out_; }
    // One JSON document on one line.
    void print(const nlohmann::json& doc);

private:
    BackendFactory factory_;
    std::unique_ptr<KernelBackend> kernel_;
    std::ostream& out_;
};

} // namespace blksnap::cli
