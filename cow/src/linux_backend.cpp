#include <blksnap/error.hpp>
#include <blksnap/events.hpp>
#include <blksnap/filter.hpp>
#include <blksnap/linux_backend.hpp>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/ioctl.h>

namespace blksnap {

namespace {

enum FilterOp : unsigned { op_attach, op_detach, op_ctl };

void set_filter_name(std::uint8_t (&name)[BLKFILTER_NAME_LENGTH]) {
    std::memset(name, 0, sizeof(name));
    std::memcpy(name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME) - 1);
}

// The device number of DEVICE, refused as the operation CTX ("attach
// /tmp: Block device required").
DeviceId device_for(const std::string& device, const std::string& ctx) {
    try {
        return block_device_id(device);
    } catch (const Error& e) {
        throw Error(e.code(), ctx);
    }
}

} // namespace

std::string module_refusal_hint(const std::filesystem::path& sys) {
    auto first_word = [](const std::filesystem::path& file) {
        std::ifstream in(file);
        std::string word;
        in >> word;
        return word;
    };
    // "none [integrity] confidentiality": the word in brackets is in force.
    std::string lockdown;
    {
        std::ifstream in(sys / "kernel" / "security" / "lockdown");
        for (std::string word; in >> word;)
            if (word.size() > 2 && word.front() == '[' && word.back() == ']')
                lockdown = word.substr(1, word.size() - 2);
    }
    std::string why;
    if (!lockdown.empty() && lockdown != "none")
        why = "the kernel is locked down (" + lockdown + ", Secure Boot)";
    else if (first_word(sys / "module" / "module" / "parameters" / "sig_enforce") == "Y")
        why = "module.sig_enforce is on";
    else
        return "";
    return why +
           " and loads only modules signed by a key it trusts: if `modprobe blksnap` says "
           "\"Key was rejected by service\", enroll the key DKMS signs with (mokutil --import "
           "/var/lib/dkms/mok.pub, reboot, confirm it in MokManager; see blksnap(8))";
}

Interception detect_interception(const std::filesystem::path& sys_module) {
    std::error_code ec;
    if (!std::filesystem::is_directory(sys_module, ec)) {
        const auto hint = module_refusal_hint(sys_module.parent_path().parent_path());
        throw Error(ENOENT, "",
                    hint.empty() ? "blksnap module not loaded"
                                 : "blksnap module not loaded: " + hint);
    }
    const auto param = sys_module / "parameters" / "interception";
    std::ifstream in(param);
    if (!in)
        return Interception::blkfilter;
    std::string value;
    in >> value;
    if (value == "blkfilter")
        return Interception::blkfilter;
    if (value == "ftrace")
        return Interception::ftrace;
    throw Error(EPROTO, param.string(), "unknown interception '" + value + "'");
}

ControlDevice::ControlDevice(const std::string& path) : fd_(open_fd(path, O_RDWR)) {}

long ControlDevice::ioctl(unsigned long request, void* arg, const std::string& context,
                          std::initializer_list<int> accept) {
    long ret;
    do {
        ret = ::ioctl(fd_.get(), request, arg);
    } while (ret < 0 && errno == EINTR && request != IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT);
    if (ret >= 0)
        return ret;
    for (int e : accept)
        if (errno == e)
            return -e;
    throw_errno(context);
}

LinuxBackend::LinuxBackend(Interception mode) : mode_(mode) {}

ControlDevice& LinuxBackend::control() {
    if (!control_)
        control_.emplace();
    return *control_;
}

long LinuxBackend::filter_ioctl(const std::string& device, unsigned op, blkfilter_ctl* ctl,
                                const std::string& ctx, std::initializer_list<int> accept) {
    if (mode_ == Interception::ftrace) {
        const DeviceId id = device_for(device, ctx);
        if (op == op_ctl) {
            blksnap_filter_ctl arg{id.major, id.minor, *ctl};
            long ret = control().ioctl(IOCTL_BLKSNAP_FILTER_CTL, &arg, ctx, accept);
            ctl->optlen = arg.ctl.optlen;
            return ret;
        }
        blksnap_filter_name arg{id.major, id.minor, {}};
        set_filter_name(arg.name.name);
        return control().ioctl(op == op_attach ? IOCTL_BLKSNAP_FILTER_ATTACH
                                               : IOCTL_BLKSNAP_FILTER_DETACH,
                               &arg, ctx, accept);
    }
    device_for(device, ctx); // refuse anything but a block device up front
    UniqueFd fd = open_fd(device, O_RDONLY | O_NONBLOCK);
    blkfilter_name name{};
    set_filter_name(name.name);
    unsigned long request = op == op_attach   ? BLKFILTER_ATTACH
                            : op == op_detach ? BLKFILTER_DETACH
                                              : BLKFILTER_CTL;
    void* arg = op == op_ctl ? static_cast<void*>(ctl) : static_cast<void*>(&name);
    long ret = ::ioctl(fd.get(), request, arg);
    if (ret >= 0)
        return ret;
    for (int e : accept)
        if (errno == e)
            return -e;
    throw_errno(ctx);
}

Version LinuxBackend::version() {
    blksnap_version v{};
    control().ioctl(IOCTL_BLKSNAP_VERSION, &v, "version");
    return {v.major, v.minor, v.revision, v.build};
}

AttachResult LinuxBackend::attach(const std::string& device) {
    long ret = filter_ioctl(device, op_attach, nullptr, context("attach", device), {EALREADY});
    return ret == -EALREADY ? AttachResult::already_attached : AttachResult::attached;
}

void LinuxBackend::detach(const std::string& device) {
    filter_ioctl(device, op_detach, nullptr, context("detach", device), {});
}

long LinuxBackend::ctl(const std::string& device, unsigned cmd, void* opt, std::uint32_t& optlen) {
    blkfilter_ctl arg{};
    set_filter_name(arg.name);
    arg.cmd = cmd;
    arg.optlen = optlen;
    arg.opt = reinterpret_cast<std::uintptr_t>(opt);
    long ret = filter_ioctl(device, op_ctl, &arg, context(ctl_command_name(cmd), device), {});
    optlen = arg.optlen;
    return ret;
}

Uuid LinuxBackend::snapshot_create(int diff_storage_fd, std::uint64_t limit_sectors) {
    blksnap_snapshot_create arg{};
    arg.diff_storage_limit_sect = limit_sectors;
    arg.diff_storage_fd = static_cast<std::uint32_t>(diff_storage_fd);
    control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_CREATE, &arg, "snapshot_create");
    return Uuid(arg.id);
}

void LinuxBackend::snapshot_destroy(const Uuid& id) {
    blksnap_uuid arg = id.raw();
    control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &arg, context("snapshot_destroy", id.str()));
}

void LinuxBackend::snapshot_take(const Uuid& id) {
    blksnap_uuid arg = id.raw();
    control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_TAKE, &arg, context("snapshot_take", id.str()));
}

std::vector<Uuid> LinuxBackend::snapshot_collect() {
    // Ask for the count, then for the ids; retry if snapshots appeared between.
    std::vector<blksnap_uuid> ids;
    for (;;) {
        blksnap_snapshot_collect arg{};
        arg.count = static_cast<std::uint32_t>(ids.size());
        arg.ids = reinterpret_cast<std::uintptr_t>(ids.data());
        long ret =
            control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &arg, "snapshot_collect", {ENODATA});
        if (ret == -ENODATA && arg.count > ids.size()) {
            ids.resize(arg.count);
            continue;
        }
        if (ret == -ENODATA)
            throw Error(ENODATA, "snapshot_collect");
        ids.resize(std::min<std::size_t>(arg.count, ids.size()));
        break;
    }
    return {ids.begin(), ids.end()};
}

std::vector<DeviceId> LinuxBackend::snapshot_devices(const Uuid& id) {
    // Ask for the count, then for the devices; retry if some joined between.
    const std::string ctx = context("snapshot_devices", id.str());
    std::vector<blksnap_bdev> devs;
    for (;;) {
        blksnap_snapshot_devices arg{};
        arg.id = id.raw();
        arg.count = static_cast<std::uint32_t>(devs.size());
        arg.devices = reinterpret_cast<std::uintptr_t>(devs.data());
        long ret = control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_DEVICES, &arg, ctx, {ENODATA});
        if (ret == 0 && devs.empty() && arg.count > 0) { // the count only
            devs.resize(arg.count);
            continue;
        }
        if (ret == -ENODATA && arg.count > devs.size()) {
            devs.resize(arg.count);
            continue;
        }
        if (ret == -ENODATA)
            throw Error(ENODATA, ctx);
        devs.resize(std::min<std::size_t>(arg.count, devs.size()));
        break;
    }
    std::vector<DeviceId> out;
    out.reserve(devs.size());
    for (const auto& d : devs)
        out.push_back({d.major, d.minor});
    return out;
}

std::optional<Event> LinuxBackend::snapshot_wait_event(const Uuid& id, std::uint32_t timeout_ms) {
    blksnap_snapshot_event arg{};
    arg.id = id.raw();
    arg.timeout_ms = timeout_ms;
    // The v6 ABI: ENOENT is "no event yet", ESRCH "no such snapshot" (the
    // library's ENOENT, as for every other request naming a snapshot).
    long ret = control().ioctl(IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &arg,
                               context("snapshot_waitevent", id.str()), {ENOENT, ESRCH});
    if (ret == -ENOENT)
        return std::nullopt;
    if (ret == -ESRCH)
        throw Error(ENOENT, context("snapshot_waitevent", id.str()));
    return decode_event(arg);
}

std::unique_ptr<KernelBackend> open_kernel_backend() {
    return std::make_unique<LinuxBackend>(detect_interception());
}

} // namespace blksnap
