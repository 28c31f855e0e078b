#include "context.hpp"

namespace blksnap::cli {

KernelBackend& Context::kernel() {
    if (!kernel_)
        kernel_ = factory_();
    return *kernel_;
}

void Context::print(const nlohmann::ordered_json& doc) {
    out_ << doc.dump() << std::endl;
}

} // namespace blksnap::cli
