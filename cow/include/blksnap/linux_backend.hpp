// The real kernel: /dev/blksnap-control plus the filter interface that the
// loaded module uses (detected at run time).
#pragma once

#include <blksnap/backend.hpp>
#include <blksnap/unique_fd.hpp>

#include <filesystem>
#include <memory>
#include <optional>

namespace blksnap {

// How the module intercepts I/O, from /sys/module/blksnap/parameters/interception:
//   blkfilter - a kernel with the block device filter: BLKFILTER_* ioctls on
//               the block device;
//   ftrace    - a stock kernel: IOCTL_BLKSNAP_FILTER_* on the control device.
enum class Interception { blkfilter, ftrace };

// Error(ENOENT, "blksnap module not loaded") when SYS_MODULE does not exist,
// with module_refusal_hint()'s text when the kernel refuses unsigned modules.
// A module without the parameter is taken for the v6 blkfilter module.
Interception detect_interception(const std::filesystem::path& sys_module = "/sys/module/blksnap");

// Why the module may have been refused, when the kernel under SYS (a sysfs
// root) loads only modules signed by a key it trusts: Secure Boot's
// lockdown (SYS/kernel/security/lockdown not "[none]") or
// module.sig_enforce (SYS/module/module/parameters/sig_enforce "Y"). Says
// how to enroll the DKMS signing key. Empty when neither holds.
std::string module_refusal_hint(const std::filesystem::path& sys = "/sys");

// The open control device /dev/blksnap-control.
class ControlDevice {
public:
    explicit ControlDevice(const std::string& path = "/dev/" BLKSNAP_CTL);

    // ioctl(2) on the control device; throws Error(CONTEXT) on failure,
    // except for the errno values listed in ACCEPT, which are returned
    // negated. Returns the ioctl's result otherwise.
    long ioctl(unsigned long request, void* arg, const std::string& context,
               std::initializer_list<int> accept = {});

private:
    UniqueFd fd_;
};

class LinuxBackend final : public KernelBackend {
public:
    explicit LinuxBackend(Interception mode);
    Interception mode() const { return mode_; }

    Version version() override;
    AttachResult attach(const std::string& device) override;
    void detach(const std::string& device) override;
    long ctl(const std::string& device, unsigned cmd, void* opt, std::uint32_t& optlen) override;
    Uuid snapshot_create(int diff_storage_fd, std::uint64_t limit_sectors) override;
    void snapshot_destroy(const Uuid& id) override;
    void snapshot_take(const Uuid& id) override;
    std::vector<Uuid> snapshot_collect() override;
    std::vector<DeviceId> snapshot_devices(const Uuid& id) override;
    std::optional<Event> snapshot_wait_event(const Uuid& id, std::uint32_t timeout_ms) override;

private:
    ControlDevice& control();
    // ioctl on the device's filter: BLKFILTER_* on the device (blkfilter)
    // or IOCTL_BLKSNAP_FILTER_* on the control device (ftrace).
    long filter_ioctl(const std::string& device, unsigned op, blkfilter_ctl* ctl,
                      const std::string& context, std::initializer_list<int> accept);

    Interception mode_;
    std::optional<ControlDevice> control_;
};

// Detects the interception and returns a LinuxBackend for it.
std::unique_ptr<KernelBackend> open_kernel_backend();

} // namespace blksnap
