// blksnap(8): see man/blksnap.8.
#include "app.hpp"

#include <blksnap/linux_backend.hpp>

#include <iostream>
#include <unistd.h>

int main(int argc, char** argv) {
    return blksnap::cli::run(
        argc, argv,
        [] { return std::shared_ptr<blksnap::KernelBackend>(blksnap::open_kernel_backend()); },
        std::cout, std::cerr, ::isatty(STDERR_FILENO) == 1);
}
