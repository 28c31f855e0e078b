// blksnap-list: a program built against the installed libblksnap, as a
// third-party backup tool would be (pkg-config --cflags --libs blksnap).
// Prints the module's version, then each snapshot and its devices.
#include <blksnap/device.hpp>
#include <blksnap/error.hpp>
#include <blksnap/linux_backend.hpp>
#include <linux/blksnap.h>

#include <cstdio>

int main() {
    try {
        auto kernel = blksnap::open_kernel_backend();
        const auto v = kernel->version();
        std::printf("%s: module %s\n", BLKSNAP_CTL, v.str().c_str());
        for (const auto& id : kernel->snapshot_collect()) {
            std::printf("%s\n", id.str().c_str());
            for (const auto& dev : kernel->snapshot_devices(id))
                std::printf("  %s\n", blksnap::block_device_path(dev).c_str());
        }
        return 0;
    } catch (const blksnap::Error& e) {
        std::fprintf(stderr, "blksnap-list: %s\n", e.what());
        return 1;
    }
}
