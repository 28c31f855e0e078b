// blksnap-fuzz: random and malformed requests to the blksnap module, from
// two threads at once, for the guest test tests/guest/fuzz.sh.
//
//   blksnap-fuzz CALLS SEED DIR DEV...
//
// Makes at least CALLS ioctl calls (half per thread) on /dev/blksnap-control
// and on the block devices DEV (BLKFILTER_* where the module uses the block
// device filter): the module's own commands with well-formed, random and
// truncated arguments; unknown command numbers and sizes; pointers that are
// NULL, in the kernel, non-canonical, misaligned, to a page that cannot be
// read, or to a structure that runs into one; known and random snapshot
// ids; storage fds that are files, directories, devices, the control device
// itself, closed or made up. Valid creates, takes (now and then: attach,
// create, add, take) and destroys keep snapshots coming and going (at most
// 6 alive), so that the malformed requests meet every state.
//
// After each ordinary take, and now and then for a snapshot alive, the
// images are read and written (their block devices, at random offsets).
//
// DIR takes the difference storage files. The module's answers are judged:
// each command (each filter command apart) may fail only with the errors
// blksnap(4) gives it, and the calls that reach deep (takes, snapshot adds,
// change map reads, image reads and writes) must succeed at least a minimum
// number of times per 100,000 calls, else nothing deep was tested. Prints
// the count of calls and of each command's answers, then every answer out
// of its list and every minimum not reached; exits 1 on any of those. The
// guest test judges the rest: the kernel log, the unload, the state left.
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/blksnap.h>
#include <linux/fs.h>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

std::string name_of(unsigned long cmd) {
    switch (cmd) {
    case IOCTL_BLKSNAP_VERSION:
        return "version";
    case IOCTL_BLKSNAP_SNAPSHOT_CREATE:
        return "snapshot_create";
    case IOCTL_BLKSNAP_SNAPSHOT_DESTROY:
        return "snapshot_destroy";
    case IOCTL_BLKSNAP_SNAPSHOT_TAKE:
        return "snapshot_take";
    case IOCTL_BLKSNAP_SNAPSHOT_COLLECT:
        return "snapshot_collect";
    case IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT:
        return "snapshot_wait_event";
    case IOCTL_BLKSNAP_SNAPSHOT_DEVICES:
        return "snapshot_devices";
    case IOCTL_BLKSNAP_FILTER_ATTACH:
    case BLKFILTER_ATTACH:
        return "attach";
    case IOCTL_BLKSNAP_FILTER_DETACH:
    case BLKFILTER_DETACH:
        return "detach";
    case IOCTL_BLKSNAP_FILTER_CTL:
    case BLKFILTER_CTL:
        return "filter_ctl";
    default:
        return "unknown command";
    }
}

// The errors blksnap(4) lets each command return (ENOMEM: any allocation).
// Filter commands are "filter_ctl/NAME"; image I/O is "image_open",
// "image_read", "image_write".
const std::map<std::string, std::set<int>>& allowed_errors() {
    static const std::map<std::string, std::set<int>> allowed = {
        {"version", {EFAULT}},
        {"snapshot_create", {EFAULT, EBADF, EINVAL, ENOMEM}},
        {"snapshot_destroy", {EFAULT, ENOENT}},
        {"snapshot_take",
         {EFAULT, ENOENT, ENODEV, EALREADY, EBUSY, EDEADLK, ETIMEDOUT, EINVAL, ENOMEM}},
        {"snapshot_collect", {EFAULT, ENODATA, ENOMEM}},
        {"snapshot_devices", {EFAULT, EINVAL, ENOENT, ENODATA, ENOMEM}},
        {"snapshot_wait_event", {EFAULT, ENOENT, ESRCH, EINTR}},
        {"attach", {EFAULT, EINVAL, EOPNOTSUPP, EALREADY, ENOENT, ENODEV, ENXIO, EBUSY, ENOMEM}},
        {"detach", {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO}},
        {"filter_ctl/cbtinfo", {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO, EBUSY}},
        {"filter_ctl/cbtmap", {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO, EBUSY}},
        {"filter_ctl/cbtdirty", {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO, EBUSY, ENOMEM}},
        {"filter_ctl/snapshotadd",
         {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO, EBUSY, EALREADY, ENOMEM}},
        {"filter_ctl/snapshotinfo", {EFAULT, EINVAL, EOPNOTSUPP, ENOENT, ENODEV, ENXIO}},
        {"filter_ctl/unknown", {EFAULT, EINVAL, EOPNOTSUPP, ENOTTY, ENOENT, ENODEV, ENXIO}},
        {"unknown command", {ENOTTY}},
        // The image goes away with its snapshot, at any time.
        {"image_open", {ENOENT, ENXIO, ENODEV}},
        {"image_read", {EIO, ENODEV, ENXIO}},
        {"image_write", {EIO, ENODEV, ENXIO, ENOSPC}},
    };
    return allowed;
}

// Successes the deep calls must reach per 100,000 calls.
const std::map<std::string, uint64_t>& deep_minimums() {
    static const std::map<std::string, uint64_t> minimums = {
        {"snapshot_take", 5},        {"filter_ctl/snapshotadd", 10},  {"filter_ctl/cbtmap", 20},
        {"filter_ctl/cbtdirty", 10}, {"filter_ctl/snapshotinfo", 20}, {"image_read", 20},
        {"image_write", 10},
    };
    return minimums;
}

const char* filter_cmd_name(uint32_t cmd) {
    switch (cmd) {
    case blkfilter_ctl_blksnap_cbtinfo:
        return "filter_ctl/cbtinfo";
    case blkfilter_ctl_blksnap_cbtmap:
        return "filter_ctl/cbtmap";
    case blkfilter_ctl_blksnap_cbtdirty:
        return "filter_ctl/cbtdirty";
    case blkfilter_ctl_blksnap_snapshotadd:
        return "filter_ctl/snapshotadd";
    case blkfilter_ctl_blksnap_snapshotinfo:
        return "filter_ctl/snapshotinfo";
    default:
        return "filter_ctl/unknown";
    }
}

[[noreturn]] void die(const std::string& what, int err) {
    std::fprintf(stderr, "blksnap-fuzz: %s: %s\n", what.c_str(), std::strerror(err));
    std::exit(1);
}

class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        std::swap(fd_, o.fd_);
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0)
            close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

Fd open_or_die(const std::string& path, int flags) {
    Fd fd(open(path.c_str(), flags, 0600));
    if (fd.get() < 0)
        die(path, errno);
    return fd;
}

// Three pages: two readable and writable, then one that cannot be touched.
class Arena {
public:
    static constexpr size_t page = 4096;
    Arena() {
        void* p =
            mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            die("mmap", errno);
        base_ = static_cast<uint8_t*>(p);
        if (mprotect(base_ + 2 * page, page, PROT_NONE))
            die("mprotect", errno);
    }
    Arena(const Arena&) = delete;
    Arena& operator=(const Arena&) = delete;
    ~Arena() { munmap(base_, 3 * page); }
    uint8_t* data() { return base_; }
    uint8_t* guard() { return base_ + 2 * page; }

private:
    uint8_t* base_;
};

struct Target {
    std::string path;
    Fd fd;
    uint32_t major, minor;
    uint64_t sectors;   // its size
    uint32_t map_bytes; // its change map's size at most (a byte per 64 KiB)
};

// What both threads share: the files and devices, the snapshots alive.
struct Shared {
    Fd ctl;
    Fd dir;
    std::string dir_path;
    std::vector<Target> devs;
    bool blkfilter = false;
    std::mutex lock;
    std::vector<blksnap_uuid> ids; // snapshots believed alive
    std::atomic<uint64_t> calls{0};
    std::map<std::pair<std::string, int>, uint64_t> answers; // (command, answer), under lock
};

class Fuzzer {
public:
    Fuzzer(Shared& s, uint64_t seed) : s_(s), rng_(seed) {}

    void run(uint64_t calls) {
        for (uint64_t i = 0; i < calls; i++) {
            one();
            uint64_t n = s_.calls.load();
            if (n % 10000 == 0)
                std::fprintf(stderr, "blksnap-fuzz: %llu calls\n",
                             static_cast<unsigned long long>(n));
        }
    }

private:
    uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
    bool chance(unsigned percent) { return pick(100) < percent; }
    void fill_random(void* p, size_t n) {
        auto* b = static_cast<uint8_t*>(p);
        for (size_t i = 0; i < n; i++)
            b[i] = static_cast<uint8_t>(rng_());
    }

    // A user pointer for an argument of SIZE bytes whose good content is
    // GOOD: mostly a copy of it in arena LEVEL, else one of the bad kinds.
    // Now and then a byte of the copy is changed, unless the argument holds
    // a pointer the kernel writes through (!MAY_CHANGE): a changed byte
    // there could point it at this program's own heap or stack, which the
    // kernel would then rightly overwrite. An argument and what it points
    // to are in arenas of their own levels (0: the ioctl's argument, 1: a
    // filter command's option, 2: a buffer or array the option points to),
    // so that copying one never overwrites another.
    uintptr_t pointer(const void* good, size_t size, bool may_change = true, int level = 0) {
        if (chance(50))
            return bad_pointer(good, size, level);
        uint8_t* a = arenas_[level].data();
        std::memcpy(a, good, size);
        if (may_change && chance(10))
            a[pick(size)] = static_cast<uint8_t>(rng_());
        return reinterpret_cast<uintptr_t>(a);
    }

    // A pointer the kernel cannot read SIZE bytes of GOOD from, or reads
    // random bytes from.
    uintptr_t bad_pointer(const void* good, size_t size, int level = 0) {
        Arena& arena = arenas_[level];
        uint8_t* a = arena.data();
        switch (pick(7)) {
        case 0:
            return 0;
        case 1:
            return 0xffffffff81000000ull; // kernel text
        case 2:
            return 0x8000000000000000ull; // non-canonical
        case 3:
            return reinterpret_cast<uintptr_t>(arena.guard());
        case 4: { // runs into the page that cannot be read
            size_t cut = size > 1 ? 1 + pick(size - 1) : 1;
            uint8_t* p = arena.guard() - cut;
            std::memcpy(p, good, cut);
            return reinterpret_cast<uintptr_t>(p);
        }
        case 5:
            return rng_();
        default: // misaligned, random content
            fill_random(a + 1, size);
            return reinterpret_cast<uintptr_t>(a + 1);
        }
    }

    blksnap_uuid some_id() {
        blksnap_uuid id{};
        {
            std::lock_guard g(s_.lock);
            if (!s_.ids.empty() && chance(80))
                return s_.ids[pick(s_.ids.size())];
        }
        if (chance(50))
            fill_random(&id, sizeof(id));
        return id;
    }

    uint32_t some_len(uint32_t good) {
        switch (pick(8)) {
        case 0:
            return 0;
        case 1:
            return good ? good - 1 : 0;
        case 2:
            return good + 1 + pick(64);
        case 3:
            return static_cast<uint32_t>(rng_());
        default:
            return good;
        }
    }

    // An ioctl, counted under LABEL (default: the command's name).
    int call(int fd, unsigned long cmd, uintptr_t arg, const char* label = nullptr) {
        int ret = ioctl(fd, cmd, arg);
        int err = ret < 0 ? errno : 0;
        s_.calls++;
        count(label ? label : name_of(cmd), ret < 0 ? -err : (ret > 0 ? 1 : 0));
        return ret < 0 ? -err : ret;
    }
    void count(const std::string& label, int answer) {
        std::lock_guard g(s_.lock);
        s_.answers[{label, answer}]++;
    }

    const Target& some_dev() { return s_.devs[pick(s_.devs.size())]; }

    // A filter command (cbtinfo .. snapshotinfo) with its option.
    void filter_ctl() {
        const Target& d = some_dev();
        uint32_t cmd = chance(90) ? pick(5) : static_cast<uint32_t>(rng_());
        std::array<uint8_t, 256> opt{};
        uint32_t good = 0;
        std::vector<blksnap_sectors> ranges;
        switch (cmd) {
        case blkfilter_ctl_blksnap_cbtinfo:
            good = sizeof(blksnap_cbtinfo);
            break;
        case blkfilter_ctl_blksnap_cbtmap: {
            blksnap_cbtmap m{};
            // The map has at most a byte per 64 KiB of the device.
            m.offset = chance(70) ? pick(d.map_bytes + 1) : static_cast<uint32_t>(rng_());
            m.length = chance(70) ? pick(8192) : static_cast<uint32_t>(rng_());
            m.buffer = pointer(opt.data(), 64, true, 2);
            good = sizeof(m);
            std::memcpy(opt.data(), &m, good);
            break;
        }
        case blkfilter_ctl_blksnap_cbtdirty: {
            blksnap_cbtdirty c{};
            ranges.resize(1 + pick(8));
            for (auto& r : ranges) {
                r.offset = chance(80) ? pick(d.sectors) : rng_();
                r.count = chance(80) ? pick(1 << 12) : rng_();
            }
            c.count = chance(80) ? ranges.size() : static_cast<uint32_t>(pick(1 << 20));
            c.dirty_sectors = chance(80) ? reinterpret_cast<uintptr_t>(ranges.data())
                                         : pointer(ranges.data(), sizeof(blksnap_sectors), true, 2);
            good = sizeof(c);
            std::memcpy(opt.data(), &c, good);
            break;
        }
        case blkfilter_ctl_blksnap_snapshotadd: {
            blksnap_snapshotadd a{some_id()};
            good = sizeof(a);
            std::memcpy(opt.data(), &a, good);
            break;
        }
        case blkfilter_ctl_blksnap_snapshotinfo:
            good = sizeof(blksnap_snapshotinfo);
            break;
        default:
            good = pick(64);
            fill_random(opt.data(), good);
        }
        // The option goes through pointer(), so it may be bad itself.
        uintptr_t optp = pointer(opt.data(), std::max<uint32_t>(good, 1),
                                 cmd != blkfilter_ctl_blksnap_cbtmap, 1);
        uint32_t optlen = some_len(good);
        char name[BLKFILTER_NAME_LENGTH] = BLKSNAP_FILTER_NAME;
        if (chance(5))
            fill_random(name, sizeof(name));
        if (s_.blkfilter && chance(70)) {
            blkfilter_ctl c{};
            std::memcpy(c.name, name, sizeof(c.name));
            c.cmd = cmd;
            c.optlen = optlen;
            c.opt = optp;
            call(d.fd.get(), BLKFILTER_CTL, pointer(&c, sizeof(c), false), filter_cmd_name(cmd));
        } else {
            blksnap_filter_ctl c{};
            c.dev_major = chance(95) ? d.major : static_cast<uint32_t>(rng_());
            c.dev_minor = chance(95) ? d.minor : static_cast<uint32_t>(rng_());
            std::memcpy(c.ctl.name, name, sizeof(c.ctl.name));
            c.ctl.cmd = cmd;
            c.ctl.optlen = optlen;
            c.ctl.opt = optp;
            call(s_.ctl.get(), IOCTL_BLKSNAP_FILTER_CTL, pointer(&c, sizeof(c), false),
                 filter_cmd_name(cmd));
        }
    }

    void attach_detach() {
        const Target& d = some_dev();
        bool attach = chance(60);
        char name[BLKFILTER_NAME_LENGTH] = BLKSNAP_FILTER_NAME;
        if (chance(5))
            fill_random(name, sizeof(name));
        if (s_.blkfilter && chance(70)) {
            blkfilter_name n{};
            std::memcpy(n.name, name, sizeof(n.name));
            call(d.fd.get(), attach ? BLKFILTER_ATTACH : BLKFILTER_DETACH, pointer(&n, sizeof(n)));
        } else {
            blksnap_filter_name n{};
            n.dev_major = chance(95) ? d.major : static_cast<uint32_t>(rng_());
            n.dev_minor = chance(95) ? d.minor : static_cast<uint32_t>(rng_());
            std::memcpy(n.name.name, name, sizeof(n.name.name));
            call(s_.ctl.get(), attach ? IOCTL_BLKSNAP_FILTER_ATTACH : IOCTL_BLKSNAP_FILTER_DETACH,
                 pointer(&n, sizeof(n)));
        }
    }

    // A storage fd of some kind; *owned keeps it open for the call.
    int storage_fd(Fd& owned) {
        switch (pick(8)) {
        case 0:
            return -1;
        case 1:
            return static_cast<int>(rng_());
        case 2:
            return s_.dir.get();
        case 3:
            return s_.ctl.get();
        case 4:
            return some_dev().fd.get();
        case 5: { // a closed fd number
            int fd = dup(0);
            close(fd);
            return fd;
        }
        default:
            owned = Fd(open(s_.dir_path.c_str(), O_TMPFILE | O_RDWR, 0600));
            return owned.get();
        }
    }

    // At most 6 snapshots alive: the oldest one goes.
    void evict() {
        std::lock_guard g(s_.lock);
        if (s_.ids.size() >= 6) {
            blksnap_uuid victim = s_.ids.front();
            s_.ids.erase(s_.ids.begin());
            ioctl(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_DESTROY, &victim);
        }
    }

    void create() {
        evict();
        Fd storage;
        blksnap_snapshot_create c{};
        c.diff_storage_fd = static_cast<uint32_t>(storage_fd(storage));
        switch (pick(4)) {
        case 0:
            c.diff_storage_limit_sect = 0;
            break;
        case 1:
            c.diff_storage_limit_sect = rng_();
            break;
        default:
            c.diff_storage_limit_sect = (8 + pick(56)) << 11; // 8..64 MiB
        }
        uintptr_t p = pointer(&c, sizeof(c));
        if (call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_CREATE, p) == 0) {
            blksnap_snapshot_create done{};
            std::memcpy(&done, reinterpret_cast<void*>(p), sizeof(done));
            std::lock_guard g(s_.lock);
            s_.ids.push_back(done.id);
        }
    }

    void by_id(unsigned long cmd) {
        blksnap_uuid id = some_id();
        int ret = call(s_.ctl.get(), cmd, pointer(&id, sizeof(id)));
        if (cmd == IOCTL_BLKSNAP_SNAPSHOT_DESTROY && ret == 0) {
            std::lock_guard g(s_.lock);
            std::erase_if(s_.ids, [&](const blksnap_uuid& x) { return !memcmp(&x, &id, 16); });
        }
    }

    void collect() {
        std::array<blksnap_uuid, 8> ids{};
        blksnap_snapshot_collect c{};
        c.count = chance(70) ? pick(9) : static_cast<uint32_t>(rng_());
        c.ids = chance(20) ? 0 : pointer(ids.data(), sizeof(ids), true, 2);
        call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_COLLECT, pointer(&c, sizeof(c), false));
    }

    void devices() {
        std::array<blksnap_bdev, 8> devs{};
        blksnap_snapshot_devices d{};
        d.id = some_id();
        d.count = chance(70) ? pick(9) : static_cast<uint32_t>(rng_());
        d.reserved = chance(90) ? 0 : static_cast<uint32_t>(rng_());
        d.devices = chance(20) ? 0 : pointer(devs.data(), sizeof(devs), true, 2);
        call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_DEVICES, pointer(&d, sizeof(d), false));
    }

    void wait_event() {
        // The event is 4 KiB: either whole in the arena (two pages) or a bad
        // pointer; never a changed byte, which could make the timeout of a
        // known snapshot days long.
        blksnap_snapshot_event e{};
        e.id = some_id();
        e.timeout_ms = pick(3);
        uintptr_t p;
        if (chance(70)) {
            std::memcpy(arena_.data(), &e, sizeof(e));
            p = reinterpret_cast<uintptr_t>(arena_.data());
        } else {
            p = bad_pointer(&e, 32);
        }
        call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_WAIT_EVENT, p);
    }

    // An unknown command: another number, direction or size.
    void unknown() {
        unsigned dir = pick(4);
        unsigned nr = chance(50) ? 10 + pick(246) : pick(10);
        unsigned size = pick(1 << 14);
        uint8_t buf[64];
        fill_random(buf, sizeof(buf));
        int fd = chance(70) ? s_.ctl.get() : some_dev().fd.get();
        unsigned type = fd == s_.ctl.get() ? BLKSNAP : 0x12;
        if (type == 0x12 && nr < 140) // leave the block layer's own ioctls alone
            nr = 143 + pick(100);
        call(fd, _IOC(dir, type, nr, size), pointer(buf, sizeof(buf)));
    }

    // A well-formed ctl of DEV (the flavour's way), for the setup below.
    int good_ctl(const Target& d, uint32_t cmd, void* opt, uint32_t len) {
        if (s_.blkfilter) {
            blkfilter_ctl c{};
            std::memcpy(c.name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME));
            c.cmd = cmd;
            c.optlen = len;
            c.opt = reinterpret_cast<uintptr_t>(opt);
            return call(d.fd.get(), BLKFILTER_CTL, reinterpret_cast<uintptr_t>(&c),
                        filter_cmd_name(cmd));
        }
        blksnap_filter_ctl c{};
        c.dev_major = d.major;
        c.dev_minor = d.minor;
        std::memcpy(c.ctl.name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME));
        c.ctl.cmd = cmd;
        c.ctl.optlen = len;
        c.ctl.opt = reinterpret_cast<uintptr_t>(opt);
        return call(s_.ctl.get(), IOCTL_BLKSNAP_FILTER_CTL, reinterpret_cast<uintptr_t>(&c),
                    filter_cmd_name(cmd));
    }

    // Reads and writes of the image of DEV, when a taken snapshot holds it:
    // 4 KiB at random offsets. Each answer is counted like an ioctl's.
    void image_io(const Target& d) {
        blksnap_snapshotinfo info{};
        if (good_ctl(d, blkfilter_ctl_blksnap_snapshotinfo, &info, sizeof(info)) < 0 ||
            !info.image[0])
            return;
        std::string name(reinterpret_cast<const char*>(info.image),
                         strnlen(reinterpret_cast<const char*>(info.image), sizeof(info.image)));
        Fd fd(open(("/dev/" + name).c_str(), O_RDWR));
        count("image_open", fd.get() < 0 ? -errno : 0);
        if (fd.get() < 0)
            return;
        uint64_t size = 0;
        if (ioctl(fd.get(), BLKGETSIZE64, &size) || size < 4096)
            return;
        std::array<uint8_t, 4096> buf{};
        for (int i = 0; i < 4; i++) {
            off_t off = static_cast<off_t>(pick(size / 4096) * 4096);
            if (chance(70)) {
                ssize_t n = pread(fd.get(), buf.data(), buf.size(), off);
                count("image_read", n < 0 ? -errno : 0);
            } else {
                fill_random(buf.data(), buf.size());
                ssize_t n = pwrite(fd.get(), buf.data(), buf.size(), off);
                count("image_write", n < 0 ? -errno : 0);
            }
        }
    }

    // A snapshot made and taken the ordinary way (attach, create, add some
    // of the devices, take), so that the malformed requests also meet
    // snapshots that hold devices, copy-on-write and images.
    void taken_snapshot() {
        evict();
        blksnap_snapshot_create c{};
        Fd storage(open(s_.dir_path.c_str(), O_TMPFILE | O_RDWR, 0600));
        c.diff_storage_fd = static_cast<uint32_t>(storage.get());
        c.diff_storage_limit_sect = 64 << 11;
        if (call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_CREATE, reinterpret_cast<uintptr_t>(&c)))
            return;
        {
            std::lock_guard g(s_.lock);
            s_.ids.push_back(c.id);
        }
        for (const Target& d : s_.devs) {
            if (chance(30))
                continue;
            if (s_.blkfilter) {
                blkfilter_name n{};
                std::memcpy(n.name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME));
                call(d.fd.get(), BLKFILTER_ATTACH, reinterpret_cast<uintptr_t>(&n));
            } else {
                blksnap_filter_name n{};
                n.dev_major = d.major;
                n.dev_minor = d.minor;
                std::memcpy(n.name.name, BLKSNAP_FILTER_NAME, sizeof(BLKSNAP_FILTER_NAME));
                call(s_.ctl.get(), IOCTL_BLKSNAP_FILTER_ATTACH, reinterpret_cast<uintptr_t>(&n));
            }
            blksnap_snapshotadd a{c.id};
            good_ctl(d, blkfilter_ctl_blksnap_snapshotadd, &a, sizeof(a));
        }
        if (call(s_.ctl.get(), IOCTL_BLKSNAP_SNAPSHOT_TAKE, reinterpret_cast<uintptr_t>(&c.id)))
            return;
        for (const Target& d : s_.devs)
            image_io(d);
    }

    void one() {
        // A take costs seconds on the debug kernel (freeze, image disks,
        // their teardown): about 25 in 100,000 calls.
        if (pick(4000) == 0) {
            taken_snapshot();
            return;
        }
        // Image I/O of whatever snapshot holds a device now.
        if (pick(1000) < 10) {
            image_io(some_dev());
            return;
        }
        unsigned r = pick(100);
        if (r < 30)
            filter_ctl();
        else if (r < 38)
            attach_detach();
        else if (r < 44)
            create();
        else if (r < 52)
            by_id(IOCTL_BLKSNAP_SNAPSHOT_TAKE);
        else if (r < 56)
            by_id(IOCTL_BLKSNAP_SNAPSHOT_DESTROY);
        else if (r < 64)
            collect();
        else if (r < 72)
            devices();
        else if (r < 80)
            wait_event();
        else if (r < 85) {
            blksnap_version v{};
            call(s_.ctl.get(), IOCTL_BLKSNAP_VERSION, pointer(&v, sizeof(v)));
        } else
            unknown();
    }

    Shared& s_;
    std::mt19937_64 rng_;
    std::array<Arena, 3> arenas_;
    Arena& arena_ = arenas_[0];
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: blksnap-fuzz CALLS SEED DIR DEV...\n");
        return 2;
    }
    uint64_t calls = std::strtoull(argv[1], nullptr, 0);
    uint64_t seed = std::strtoull(argv[2], nullptr, 0);
    Shared s;
    s.dir_path = argv[3];
    s.ctl = open_or_die("/dev/" BLKSNAP_CTL, O_RDWR);
    s.dir = open_or_die(s.dir_path, O_RDONLY | O_DIRECTORY);
    {
        Fd f = open_or_die("/sys/module/blksnap/parameters/interception", O_RDONLY);
        char mode[16] = {};
        if (read(f.get(), mode, sizeof(mode) - 1) < 0)
            die("interception", errno);
        s.blkfilter = std::strncmp(mode, "blkfilter", 9) == 0;
    }
    for (int i = 4; i < argc; i++) {
        Fd fd = open_or_die(argv[i], O_RDONLY);
        struct stat st {};
        if (fstat(fd.get(), &st) || !S_ISBLK(st.st_mode))
            die(argv[i], ENOTBLK);
        uint64_t bytes = 0;
        if (ioctl(fd.get(), BLKGETSIZE64, &bytes))
            die(argv[i], errno);
        s.devs.push_back({argv[i], std::move(fd), major(st.st_rdev), minor(st.st_rdev), bytes >> 9,
                          static_cast<uint32_t>(bytes >> 16)});
    }
    {
        std::jthread other([&] { Fuzzer(s, seed * 2 + 1).run(calls - calls / 2); });
        Fuzzer(s, seed * 2).run(calls / 2);
    }
    const uint64_t made = s.calls.load();
    std::printf("calls=%llu\n", static_cast<unsigned long long>(made));
    std::map<std::string, uint64_t> ok;
    for (auto& [key, n] : s.answers) {
        std::printf("%s: %s: %llu\n", key.first.c_str(),
                    key.second < 0 ? std::strerror(-key.second) : "ok",
                    static_cast<unsigned long long>(n));
        if (key.second >= 0)
            ok[key.first] += n;
    }
    // The judgement: answers out of blksnap(4)'s list, deep calls too rare.
    int bad = 0;
    for (auto& [key, n] : s.answers) {
        if (key.second >= 0)
            continue;
        auto it = allowed_errors().find(key.first);
        if (it == allowed_errors().end() || !it->second.count(-key.second)) {
            std::printf("unexpected: %s failed with %s (errno %d) %llu times\n", key.first.c_str(),
                        std::strerror(-key.second), -key.second,
                        static_cast<unsigned long long>(n));
            bad++;
        }
    }
    for (auto& [label, per100k] : deep_minimums()) {
        const uint64_t want = per100k * calls / 100000;
        std::printf("deep: %s ok %llu (at least %llu)\n", label.c_str(),
                    static_cast<unsigned long long>(ok[label]),
                    static_cast<unsigned long long>(want));
        if (ok[label] < want) {
            std::printf("too few: %s succeeded %llu times, not %llu\n", label.c_str(),
                        static_cast<unsigned long long>(ok[label]),
                        static_cast<unsigned long long>(want));
            bad++;
        }
    }
    if (made < calls) {
        std::printf("too few calls: %llu, not %llu\n", static_cast<unsigned long long>(made),
                    static_cast<unsigned long long>(calls));
        bad++;
    }
    return bad ? 1 : 0;
}
