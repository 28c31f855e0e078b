// blksnap-probe: raw ioctl access to the blksnap module for the guest tests.
// It talks to the kernel directly (no library) so that tests can also send
// what a well-behaved library never would: short and oversized lengths,
// huge offsets, bad pointers, unknown names.
//
//   blksnap-probe version
//   blksnap-probe attach DEV | detach DEV
//   blksnap-probe info DEV            (cbtinfo as key=value lines)
//   blksnap-probe map DEV FILE        (the change map, read in odd pieces)
//   blksnap-probe dirty DEV SECTOR:COUNT...
//   blksnap-probe badinput DEV        (every bad request gets its errno)
//   blksnap-probe create PATH MODE LIMIT  (snapshot on odd storage fds)
//   blksnap-probe cycle DEV N DIR     (N snapshots taken and destroyed)
//   blksnap-probe devices DEV DIR     (IOCTL_BLKSNAP_SNAPSHOT_DEVICES battery)
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <linux/blksnap.h>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <vector>

namespace {

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd >= 0)
            close(fd);
    }
};

[[noreturn]] void die(const std::string& what, int err) {
    std::fprintf(stderr, "blksnap-probe: %s: %s\n", what.c_str(), std::strerror(err));
    std::exit(1);
}

bool use_blkfilter() {
    std::ifstream f("/sys/module/blksnap/parameters/interception");
    std::string mode;
    if (!(f >> mode))
        die("blksnap module", ENOENT);
    return mode == "blkfilter";
}

// One target device: every request goes through this, in either flavour.
class Device {
public:
    explicit Device(const std::string& path) : path_(path), dev_(open(path.c_str(), O_RDONLY)) {
        struct stat st {};
        if (dev_.fd < 0 || fstat(dev_.fd, &st) || !S_ISBLK(st.st_mode))
            die(path, dev_.fd < 0 ? errno : ENOTBLK);
        rdev_ = st.st_rdev;
        if (!blkfilter_) {
            ctl_.fd = open("/dev/" BLKSNAP_CTL, O_RDWR);
            if (ctl_.fd < 0)
                die("/dev/" BLKSNAP_CTL, errno);
        }
    }
    // Each returns 0/positive or -errno.
    int attach(const char* name = BLKSNAP_FILTER_NAME) { return name_op(true, name); }
    int detach(const char* name = BLKSNAP_FILTER_NAME) { return name_op(false, name); }
    int ctl(unsigned cmd, void* opt, uint32_t* optlen, const char* name = BLKSNAP_FILTER_NAME) {
        int ret;
        if (blkfilter_) {
            blkfilter_ctl c{};
            std::memcpy(c.name, name, std::min(std::strlen(name), sizeof(c.name)));
            c.cmd = cmd;
            c.optlen = *optlen;
            c.opt = reinterpret_cast<uintptr_t>(opt);
            ret = ioctl(dev_.fd, BLKFILTER_CTL, &c);
            *optlen = c.optlen;
        } else {
            blksnap_filter_ctl c{};
            c.dev_major = major(rdev_);
            c.dev_minor = minor(rdev_);
            std::memcpy(c.ctl.name, name, std::min(std::strlen(name), sizeof(c.ctl.name)));
            c.ctl.cmd = cmd;
            c.ctl.optlen = *optlen;
            c.ctl.opt = reinterpret_cast<uintptr_t>(opt);
            ret = ioctl(ctl_.fd, IOCTL_BLKSNAP_FILTER_CTL, &c);
            *optlen = c.ctl.optlen;
        }
        return ret < 0 ? -errno : ret;
    }
    // A raw request with a caller-chosen argument (bad pointers).
    int raw_attach(unsigned long arg) {
        int ret = blkfilter_ ? ioctl(dev_.fd, BLKFILTER_ATTACH, arg)
                             : ioctl(ctl_.fd, IOCTL_BLKSNAP_FILTER_ATTACH, arg);
        return ret < 0 ? -errno : ret;
    }
    int raw_ctl(unsigned long arg) {
        int ret = blkfilter_ ? ioctl(dev_.fd, BLKFILTER_CTL, arg)
                             : ioctl(ctl_.fd, IOCTL_BLKSNAP_FILTER_CTL, arg);
        return ret < 0 ? -errno : ret;
    }
    int attach_devnum(uint32_t maj, uint32_t min) {
        blksnap_filter_name n{};
        n.dev_major = maj;
        n.dev_minor = min;
        std::strcpy(reinterpret_cast<char*>(n.name.name), BLKSNAP_FILTER_NAME);
        int ret = ioctl(ctl_.fd, IOCTL_BLKSNAP_FILTER_ATTACH, &n);
        return ret < 0 ? -errno : ret;
    }
    blksnap_cbtinfo info() {
        blksnap_cbtinfo i{};
        uint32_t len = sizeof(i);
        if (int r = ctl(blkfilter_ctl_blksnap_cbtinfo, &i, &len); r < 0)
            die("cbtinfo " + path_, -r);
        return i;
    }
    bool blkfilter() const { return blkfilter_; }
    const std::string& path() const { return path_; }

private:
    int name_op(bool attach, const char* name) {
        int ret;
        if (blkfilter_) {
            blkfilter_name n{};
            std::memcpy(n.name, name, std::min(std::strlen(name), sizeof(n.name)));
            ret = ioctl(dev_.fd, attach ? BLKFILTER_ATTACH : BLKFILTER_DETACH, &n);
        } else {
            blksnap_filter_name n{};
            n.dev_major = major(rdev_);
            n.dev_minor = minor(rdev_);
            std::memcpy(n.name.name, name, std::min(std::strlen(name), sizeof(n.name.name)));
            ret = ioctl(ctl_.fd, attach ? IOCTL_BLKSNAP_FILTER_ATTACH : IOCTL_BLKSNAP_FILTER_DETACH,
                        &n);
        }
        return ret < 0 ? -errno : ret;
    }
    std::string path_;
    bool blkfilter_ = use_blkfilter();
    Fd dev_;
    Fd ctl_{-1};
    dev_t rdev_ = 0;
};

int cmd_version() {
    Fd ctl(open("/dev/" BLKSNAP_CTL, O_RDWR));
    if (ctl.fd < 0)
        die("/dev/" BLKSNAP_CTL, errno);
    blksnap_version v{};
    if (ioctl(ctl.fd, IOCTL_BLKSNAP_VERSION, &v))
        die("version", errno);
    std::printf("%u.%u.%u.%u\n", v.major, v.minor, v.revision, v.build);
    return 0;
}

int cmd_info(Device& d) {
    blksnap_cbtinfo i = d.info();
    char uuid[40];
    int n = 0;
    for (int k = 0; k < 16; k++)
        n +=
            std::snprintf(uuid + n, sizeof(uuid) - n, "%s%02x",
                          (k == 4 || k == 6 || k == 8 || k == 10) ? "-" : "", i.generation_id.b[k]);
    std::printf("block_size=%u\ndevice_capacity=%llu\nblock_count=%u\ngeneration_id=%s\n"
                "changes_number=%u\n",
                i.block_size, static_cast<unsigned long long>(i.device_capacity), i.block_count,
                uuid, i.changes_number);
    return 0;
}

int cmd_map(Device& d, const char* file) {
    blksnap_cbtinfo i = d.info();
    std::vector<uint8_t> map(i.block_count);
    // Odd-sized pieces exercise the offset arithmetic.
    constexpr uint32_t piece = 4093;
    for (uint32_t off = 0; off < i.block_count;) {
        blksnap_cbtmap m{off, piece, reinterpret_cast<uintptr_t>(map.data() + off)};
        m.length = std::min<uint32_t>(piece, i.block_count - off);
        uint32_t len = sizeof(m);
        int r = d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len);
        if (r <= 0)
            die("cbtmap " + d.path(), r < 0 ? -r : EIO);
        off += r;
    }
    std::ofstream out(file, std::ios::binary);
    out.write(reinterpret_cast<const char*>(map.data()), map.size());
    return out ? 0 : 1;
}

int cmd_dirty(Device& d, int argc, char** argv) {
    std::vector<blksnap_sectors> ranges;
    for (int k = 0; k < argc; k++) {
        unsigned long long off, cnt;
        if (std::sscanf(argv[k], "%llu:%llu", &off, &cnt) != 2)
            die(std::string("range ") + argv[k], EINVAL);
        ranges.push_back({off, cnt});
    }
    blksnap_cbtdirty arg{static_cast<uint32_t>(ranges.size()),
                         reinterpret_cast<uintptr_t>(ranges.data())};
    uint32_t len = sizeof(arg);
    if (int r = d.ctl(blkfilter_ctl_blksnap_cbtdirty, &arg, &len); r < 0)
        die("cbtdirty " + d.path(), -r);
    return 0;
}

// One check of a battery: prints it, counts it in FAILURES when GOT is not
// one of WANT.
struct Expect {
    int& failures;
    void operator()(const char* what, int got, std::initializer_list<int> want) const {
        bool ok = false;
        for (int w : want)
            ok |= got == w;
        std::printf("%-4s %-48s got %d (%s)\n", ok ? "ok" : "FAIL", what, got,
                    got < 0 ? std::strerror(-got) : "success");
        failures += !ok;
    }
};

// A new snapshot on an unnamed storage file in DIR (STORAGE keeps it open).
blksnap_uuid create_snapshot(const Fd& ctl, Fd& storage, const char* dir) {
    storage.fd = open(dir, O_TMPFILE | O_RDWR | O_EXCL, 0600);
    if (storage.fd < 0)
        die(dir, errno);
    blksnap_snapshot_create c{};
    c.diff_storage_limit_sect = 1 << 17;
    c.diff_storage_fd = static_cast<uint32_t>(storage.fd);
    if (ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_CREATE, &c))
        die("snapshot create", errno);
    return c.id;
}

void add_to_snapshot(Device& d, const blksnap_uuid& id) {
    blksnap_snapshotadd add{id};
    uint32_t len = sizeof(add);
    if (int r = d.ctl(blkfilter_ctl_blksnap_snapshotadd, &add, &len); r < 0)
        die("snapshotadd " + d.path(), -r);
}

// cbtload on a freshly attached DEV: bad arguments refused, one good load,
// then refused as the tracker is no longer fresh.
void cbtload_checks(Device& d, Expect& expect, unsigned long bad_ptr) {
    const blksnap_cbtinfo info = d.info();
    std::vector<uint8_t> map(info.block_count, 0);
    map[0] = 3;
    map[info.block_count - 1] = 2;
    blksnap_cbtload ld{};
    ld.device_capacity = info.device_capacity;
    ld.block_size = info.block_size;
    ld.block_count = info.block_count;
    for (unsigned k = 0; k < sizeof(ld.generation_id.b); k++)
        ld.generation_id.b[k] = static_cast<uint8_t>(0xa0 + k);
    ld.changes_number = 2;
    ld.map = reinterpret_cast<uintptr_t>(map.data());
    auto load = [&](blksnap_cbtload arg, uint32_t len = sizeof(blksnap_cbtload)) {
        return d.ctl(blkfilter_ctl_blksnap_cbtload, &arg, &len);
    };
    expect("cbtload short length", load(ld, sizeof(ld) - 1), {-EINVAL});
    uint32_t len = sizeof(ld);
    expect("cbtload bad pointer",
           d.ctl(blkfilter_ctl_blksnap_cbtload, reinterpret_cast<void*>(bad_ptr), &len), {-EFAULT});
    auto bad = ld;
    bad.block_count++;
    expect("cbtload other block count", load(bad), {-EINVAL});
    bad = ld;
    bad.device_capacity += 512;
    expect("cbtload other capacity", load(bad), {-EINVAL});
    bad = ld;
    bad.block_size *= 2;
    expect("cbtload other block size", load(bad), {-EINVAL});
    bad = ld;
    bad.reserved[3] = 1;
    expect("cbtload reserved not zero", load(bad), {-EINVAL});
    bad = ld;
    bad.changes_number = 255;
    expect("cbtload changes number 255", load(bad), {-EINVAL});
    bad = ld;
    bad.map = bad_ptr;
    expect("cbtload bad map pointer", load(bad), {-EFAULT});
    map[1] = 4; // above changes_number + 1
    expect("cbtload map byte too big", load(ld), {-EINVAL});
    map[1] = 0;
    expect("cbtload", load(ld), {0});
    const blksnap_cbtinfo now = d.info();
    expect("cbtload: generation and number continue",
           std::memcmp(now.generation_id.b, ld.generation_id.b, sizeof(now.generation_id.b)) == 0 &&
                   now.changes_number == 2
               ? 0
               : -1,
           {0});
    std::vector<uint8_t> back(info.block_count);
    blksnap_cbtmap m{0, info.block_count, reinterpret_cast<uintptr_t>(back.data())};
    len = sizeof(m);
    expect("cbtload: the map reads back", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len),
           {static_cast<int>(info.block_count)});
    expect("cbtload: the same bytes", back == map ? 0 : -1, {0});
    expect("cbtload twice", load(ld), {-EBUSY});
}

// The bad-input battery. DEV must not be attached on entry; it is attached
// during the checks and detached at the end.
int cmd_badinput(Device& d) {
    int failures = 0;
    Expect expect{failures};
    const unsigned long bad_ptr = 16; // never mapped
    char longname[BLKFILTER_NAME_LENGTH + 1];
    std::memset(longname, 'b', BLKFILTER_NAME_LENGTH);
    longname[BLKFILTER_NAME_LENGTH] = 0;

    blksnap_cbtinfo info{};
    uint32_t len = sizeof(info);
    expect("ctl before attach", d.ctl(blkfilter_ctl_blksnap_cbtinfo, &info, &len), {-ENOENT});
    expect("detach before attach", d.detach(), {-ENOENT});
    expect("attach unknown filter", d.attach("nosuchfilter"), {-ENOENT});
    expect("attach unterminated name", d.attach(longname), {-ENOENT});
    expect("attach bad pointer", d.raw_attach(bad_ptr), {-EFAULT});
    if (!d.blkfilter()) {
        expect("attach impossible device number", d.attach_devnum(0xffffffffu, 0), {-EINVAL});
        expect("attach impossible minor", d.attach_devnum(7, 0xffffffffu), {-EINVAL});
        expect("attach missing device", d.attach_devnum(4095, 1048575), {-ENXIO, -ENODEV});
    }
    expect("attach", d.attach(), {0});
    expect("attach again", d.attach(), {-EALREADY});
    cbtload_checks(d, expect, bad_ptr);

    len = sizeof(info) - 1;
    expect("cbtinfo short length", d.ctl(blkfilter_ctl_blksnap_cbtinfo, &info, &len), {-EINVAL});
    len = 0xffffffffu;
    expect("cbtinfo oversized length", d.ctl(blkfilter_ctl_blksnap_cbtinfo, &info, &len), {0});
    expect("cbtinfo writes back its length", len == sizeof(info) ? 0 : -1, {0});
    len = sizeof(info);
    expect("cbtinfo bad pointer",
           d.ctl(blkfilter_ctl_blksnap_cbtinfo, reinterpret_cast<void*>(bad_ptr), &len), {-EFAULT});
    len = sizeof(info);
    expect("unknown command", d.ctl(1000, &info, &len), {-ENOTTY});
    len = sizeof(info);
    expect("ctl unknown filter", d.ctl(blkfilter_ctl_blksnap_cbtinfo, &info, &len, "other"),
           {-ENOENT});
    expect("ctl bad pointer", d.raw_ctl(bad_ptr), {-EFAULT});

    info = d.info();
    std::vector<uint8_t> buf(info.block_count + 16);
    blksnap_cbtmap m{info.block_count + 1, 16, reinterpret_cast<uintptr_t>(buf.data())};
    len = sizeof(m) - 1;
    expect("cbtmap short length", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len), {-EINVAL});
    len = sizeof(m);
    expect("cbtmap offset past the end", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len), {-EINVAL});
    m.offset = info.block_count;
    expect("cbtmap offset at the end", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len), {0});
    m.offset = 0;
    m.length = 0xffffffffu;
    expect("cbtmap huge length is clipped", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len),
           {static_cast<int>(info.block_count)});
    m.length = 16;
    m.buffer = bad_ptr;
    expect("cbtmap bad buffer", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len), {-EFAULT});
    m.buffer = 0xffff800000000000ull; // kernel address
    expect("cbtmap kernel buffer", d.ctl(blkfilter_ctl_blksnap_cbtmap, &m, &len), {-EFAULT});

    const uint64_t sectors = info.device_capacity >> 9;
    blksnap_sectors r{sectors - 1, 2};
    blksnap_cbtdirty dirty{1, reinterpret_cast<uintptr_t>(&r)};
    len = sizeof(dirty);
    expect("cbtdirty past the end", d.ctl(blkfilter_ctl_blksnap_cbtdirty, &dirty, &len), {-EINVAL});
    r = {~0ull, 2};
    expect("cbtdirty overflowing range", d.ctl(blkfilter_ctl_blksnap_cbtdirty, &dirty, &len),
           {-EINVAL});
    dirty = {0xffffffffu, bad_ptr};
    expect("cbtdirty huge count, bad pointer", d.ctl(blkfilter_ctl_blksnap_cbtdirty, &dirty, &len),
           {-EFAULT});
    len = sizeof(dirty) - 1;
    expect("cbtdirty short length", d.ctl(blkfilter_ctl_blksnap_cbtdirty, &dirty, &len), {-EINVAL});

    expect("detach unknown filter", d.detach("other"), {-EINVAL, -ENOENT});
    expect("detach", d.detach(), {0});
    expect("detach again", d.detach(), {-ENOENT});

    // A tracker that has seen a write refuses a saved map: it would lose it.
    expect("attach for a write", d.attach(), {0});
    {
        Fd w(open(d.path().c_str(), O_WRONLY));
        char sector[512] = {'w'};
        expect("write a sector", pwrite(w.fd, sector, sizeof(sector), 4096) == 512 ? 0 : -errno,
               {0});
        expect("fsync", fsync(w.fd) ? -errno : 0, {0});
    }
    std::vector<uint8_t> zero_map(info.block_count);
    blksnap_cbtload after{};
    after.device_capacity = info.device_capacity;
    after.block_size = info.block_size;
    after.block_count = info.block_count;
    after.map = reinterpret_cast<uintptr_t>(zero_map.data());
    len = sizeof(after);
    expect("cbtload after a write", d.ctl(blkfilter_ctl_blksnap_cbtload, &after, &len), {-EBUSY});
    expect("detach after the write", d.detach(), {0});

    Fd ctl(open("/dev/" BLKSNAP_CTL, O_RDWR));
    expect("control: unknown ioctl", ioctl(ctl.fd, _IO(BLKSNAP, 200)) < 0 ? -errno : 0, {-ENOTTY});
    expect("control: version bad pointer",
           ioctl(ctl.fd, IOCTL_BLKSNAP_VERSION, bad_ptr) < 0 ? -errno : 0, {-EFAULT});
    std::printf("%d bad-input checks failed\n", failures);
    return failures ? 1 : 0;
}

// Create a snapshot on storage opened as asked; print the errno name, or
// the new id (then destroyed). MODE: rw, ro, rw-excl, dir, socket.
int cmd_create(const char* path, const char* mode, unsigned long long limit) {
    std::string m = mode;
    int fds[2] = {-1, -1};
    int flags = m == "ro" ? O_RDONLY : m == "dir" ? O_RDONLY | O_DIRECTORY : O_RDWR;
    if (m == "rw-excl")
        flags |= O_EXCL;
    Fd storage(-1);
    if (m == "socket") {
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds))
            die("socketpair", errno);
        storage.fd = fds[0];
        close(fds[1]);
    } else {
        storage.fd = open(path, flags);
    }
    if (storage.fd < 0)
        die(path, errno);
    Fd ctl(open("/dev/" BLKSNAP_CTL, O_RDWR));
    blksnap_snapshot_create c{};
    c.diff_storage_limit_sect = limit;
    c.diff_storage_fd = static_cast<uint32_t>(storage.fd);
    if (ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_CREATE, &c)) {
        std::printf("%s\n", strerrorname_np(errno));
        return 0;
    }
    ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &c.id);
    std::printf("created\n");
    return 0;
}

// Take N snapshots of DEV in a row (create, add, take, destroy), with an
// unnamed storage file in DIR: what a year of nightly backups does to the
// change tracker's numbers, in seconds.
int cmd_cycle(Device& d, int n, const char* dir) {
    Fd ctl(open("/dev/" BLKSNAP_CTL, O_RDWR));
    for (int i = 0; i < n; i++) {
        Fd storage(-1);
        blksnap_uuid id = create_snapshot(ctl, storage, dir);
        add_to_snapshot(d, id);
        if (ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_TAKE, &id))
            die("snapshot take", errno);
        if (ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id))
            die("snapshot destroy", errno);
    }
    return 0;
}

// IOCTL_BLKSNAP_SNAPSHOT_DEVICES and _COLLECT, good and bad, on a snapshot of DEV (not
// attached on entry; detached at the end) with an unnamed storage file in DIR.
int cmd_devices(Device& d, const char* dir) {
    int failures = 0;
    Expect expect{failures};
    Fd ctl(open("/dev/" BLKSNAP_CTL, O_RDWR));
    if (ctl.fd < 0)
        die("/dev/" BLKSNAP_CTL, errno);
    auto call = [&](unsigned long arg) {
        return ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_DEVICES, arg) < 0 ? -errno : 0;
    };
    auto list = [&](blksnap_snapshot_devices& a) { return call(reinterpret_cast<uintptr_t>(&a)); };

    Fd storage(-1);
    const blksnap_uuid id = create_snapshot(ctl, storage, dir);

    blksnap_snapshot_devices a{};
    a.id = id;
    expect("no device yet: count 0", list(a) == 0 && a.count == 0 ? 0 : -1, {0});
    if (int r = d.attach(); r < 0)
        die("attach " + d.path(), -r);
    add_to_snapshot(d, id);
    struct stat st {};
    if (stat(d.path().c_str(), &st))
        die(d.path(), errno);

    blksnap_bdev devs[4] = {};
    a = {};
    a.id = id;
    expect("NULL array: the count", list(a) == 0 && a.count == 1 ? 0 : -1, {0});
    a.count = 0;
    a.devices = reinterpret_cast<uintptr_t>(devs);
    expect("count 0: ENODATA", list(a), {-ENODATA});
    expect("count 0: the count needed", a.count == 1 ? 0 : -1, {0});
    a.count = 4;
    expect("room for 4", list(a), {0});
    expect("room for 4: count 1, the device",
           a.count == 1 && devs[0].major == major(st.st_rdev) && devs[0].minor == minor(st.st_rdev)
               ? 0
               : -1,
           {0});
    a.count = 0xffffffffu; // only one element is written
    expect("huge count", list(a), {0});
    a.count = 1;
    a.devices = 16; // never mapped
    expect("bad array pointer", list(a), {-EFAULT});
    a.devices = 0xffff800000000000ull; // kernel address
    expect("kernel array pointer", list(a), {-EFAULT});
    a.devices = reinterpret_cast<uintptr_t>(devs);
    a.reserved = 1;
    expect("reserved not zero", list(a), {-EINVAL});
    a.reserved = 0;
    a.id.b[0] ^= 0xff;
    expect("unknown snapshot", list(a), {-ENOENT});
    a.id = id;
    expect("bad argument pointer", call(16), {-EFAULT});
    // The argument readable but not writable: the count cannot go back.
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        die("mmap", errno);
    std::memcpy(page, &a, sizeof(a));
    mprotect(page, 4096, PROT_READ);
    expect("read-only argument", call(reinterpret_cast<uintptr_t>(page)), {-EFAULT});
    munmap(page, 4096);

    // IOCTL_BLKSNAP_SNAPSHOT_COLLECT: the two-call protocol, and bad arrays.
    auto collect = [&](blksnap_snapshot_collect& c) {
        return ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_COLLECT, &c) < 0 ? -errno : 0;
    };
    blksnap_uuid ids[8] = {};
    blksnap_snapshot_collect c{};
    // The first call of the protocol, as the CLI makes it: no array, count 0.
    expect("collect, NULL array, count 0: ENODATA", collect(c), {-ENODATA});
    expect("collect, NULL array, count 0: the count needed", c.count >= 1 ? 0 : -1, {0});
    c.count = 0;
    c.ids = reinterpret_cast<uintptr_t>(ids);
    expect("collect, count 0: ENODATA", collect(c), {-ENODATA});
    const unsigned needed = c.count;
    expect("collect, count 0: the count needed", needed >= 1 && needed <= 8 ? 0 : -1, {0});
    c.count = 8;
    expect("collect, room for 8", collect(c), {0});
    const bool listed = std::any_of(ids, ids + std::min(c.count, 8u), [&](const blksnap_uuid& u) {
        return std::memcmp(u.b, id.b, sizeof(u.b)) == 0;
    });
    expect("collect, room for 8: the snapshot listed", c.count == needed && listed ? 0 : -1, {0});
    c.ids = 16; // never mapped
    expect("collect, bad array pointer", collect(c), {-EFAULT});

    // IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT answers as the v6 module did, which
    // its programs rely on: ENOENT is "no event yet, ask again", ESRCH "no
    // such snapshot".
    auto wait_event = [&](const blksnap_uuid& u) {
        blksnap_snapshot_event ev{};
        ev.id = u;
        ev.timeout_ms = 10;
        return ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, &ev) < 0 ? -errno : 0;
    };
    expect("wait_event, no event within the timeout", wait_event(id), {-ENOENT});
    blksnap_uuid unknown{};
    unknown.b[0] = 1;
    expect("wait_event, unknown snapshot", wait_event(unknown), {-ESRCH});

    if (ioctl(ctl.fd, IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &id))
        die("snapshot destroy", errno);
    expect("destroyed snapshot", list(a), {-ENOENT});
    expect("wait_event, destroyed snapshot", wait_event(id), {-ESRCH});
    if (int r = d.detach(); r < 0)
        die("detach " + d.path(), -r);
    std::printf("%d snapshot_devices and snapshot_collect checks failed\n", failures);
    return failures ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: blksnap-probe version|attach|detach|info|map|dirty|badinput "
                             "[DEV] [ARGS]\n");
        return 2;
    }
    std::string cmd = argv[1];
    if (cmd == "version")
        return cmd_version();
    if (cmd == "create" && argc == 5)
        return cmd_create(argv[2], argv[3], std::stoull(argv[4]));
    if (argc < 3)
        return 2;
    Device d(argv[2]);
    if (cmd == "attach" || cmd == "detach") {
        int r = cmd == "attach" ? d.attach() : d.detach();
        if (r < 0)
            die(cmd + " " + d.path(), -r);
        return 0;
    }
    if (cmd == "info")
        return cmd_info(d);
    if (cmd == "map" && argc == 4)
        return cmd_map(d, argv[3]);
    if (cmd == "dirty")
        return cmd_dirty(d, argc - 3, argv + 3);
    if (cmd == "badinput")
        return cmd_badinput(d);
    if (cmd == "devices" && argc == 4)
        return cmd_devices(d, argv[3]);
    if (cmd == "cycle" && argc == 5)
        return cmd_cycle(d, std::stoi(argv[3]), argv[4]);
    return 2;
}
