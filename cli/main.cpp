// blksnap(8): see man/blksnap.8.
#include "app.hpp"

#include <blksnap/linux_backend.hpp>

#include <iostream>

int main(int argc, char** argv) {
    return blksnap::cli::run(argc, argv, blksnap::open_kernel_backend, std::cout, std::cerr);
}
