// blksnapfs's pure logic: path parsing, event lines, mount lookup, the tree
// and its refresh policy against a fake kernel, the handle table, the exit
// status, and image files over a regular file.
#include "event_line.hpp"
#include "events_file.hpp"
#include "fuse_session.hpp"
#include "handles.hpp"
#include "image_file.hpp"
#include "info.hpp"
#include "kernel_source.hpp"
#include "log.hpp"
#include "options.hpp"
#include "path.hpp"
#include "readahead.hpp"
#include "tree.hpp"

#include <blksnap/error.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

using namespace blksnapfs;

namespace {

const std::string uuid_a = "2a372215-0ba0-4733-9a73-8cbbb5b11794";
const std::string uuid_b = "a2088849-88eb-4572-a60f-7096cf91b17f";

class FakeSource : public Source {
public:
    std::vector<blksnap::Uuid> ids;
    std::vector<TakenDevice> devices; // of every snapshot
    std::deque<blksnap::Event> events;
    bool gone = false;
    int scans = 0;
    std::uint64_t changed = 0; // what changes() says
    bool broken = false;       // snapshots() fails

    std::vector<blksnap::Uuid> snapshots() override {
        ++scans;
        if (broken)
            throw blksnap::Error(EIO, "snapshot_collect");
        return ids;
    }
    std::uint64_t changes() override { return changed; }
    std::vector<TakenDevice> taken_devices(const blksnap::Uuid& id) override {
        std::vector<TakenDevice> out;
        for (const auto& d : devices)
            if (d.snapshot == id)
                out.push_back(d);
        return out;
    }
    std::uint32_t read_cbt_map(const TakenDevice&, std::uint32_t,
                               std::span<std::uint8_t>) override {
        return 0;
    }
    std::optional<blksnap::Event> wait_event(const blksnap::Uuid& id, std::uint32_t) override {
        if (!events.empty()) {
            auto ev = events.front();
            events.pop_front();
            return ev;
        }
        if (gone)
            throw blksnap::Error(ENOENT, "snapshot_waitevent " + id.str());
        return std::nullopt;
    }
};

TakenDevice device(const std::string& name, unsigned minor, const std::string& id = uuid_a) {
    TakenDevice d;
    d.snapshot = blksnap::Uuid::parse(id);
    d.original = {253, minor};
    d.name = name;
    d.path = "/dev/" + name;
    d.image = "blksnap-image_253:" + std::to_string(minor);
    d.cbt.device_capacity = 256ull << 20;
    d.cbt.block_size = 65536;
    d.cbt.block_count = 4096;
    return d;
}

} // namespace

TEST(FusefsPath, ParsesTheTree) {
    using K = PathRef::Kind;
    EXPECT_EQ(parse_path("/")->kind, K::root);
    auto p = parse_path("/" + uuid_a);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, K::snapshot);
    EXPECT_EQ(p->snapshot, uuid_a);
    EXPECT_EQ(parse_path("/" + uuid_a + "/events")->kind, K::events);
    p = parse_path("/" + uuid_a + "/vda/image.raw");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->kind, K::file);
    EXPECT_EQ(p->device, "vda");
    EXPECT_EQ(p->file, FileKind::image);
    EXPECT_EQ(parse_path("/" + uuid_a + "/vda/cbt.map")->file, FileKind::cbt_map);
    EXPECT_EQ(parse_path("/" + uuid_a + "/vda/info")->file, FileKind::info);
    p = parse_path("/" + uuid_b + "/loop0/info");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->snapshot, uuid_b);
    EXPECT_EQ(p->device, "loop0");
}

TEST(FusefsPath, RefusesWhatCannotExist) {
    for (const std::string& bad : std::vector<std::string>{
             "", "vda", "/nope", "/" + uuid_a + "/vda/other", "/" + uuid_a + "/vda/info/x",
             "/" + uuid_a + "/events/x", "/devices", "/devices/vda/info", "/" + uuid_a + "/", "//",
             "/" + uuid_a + "/../x", "/2A372215-0BA0-4733-9A73-8CBBB5B11794"})
        EXPECT_FALSE(parse_path(bad)) << bad;
}

TEST(FusefsEvents, LineFormat) {
    blksnap::Event ev;
    ev.code = blksnap_event_code_corrupted;
    ev.device = {8, 16};
    ev.error_code = -28;
    EXPECT_EQ(event_line(ev), "corrupted dev=8:16 err=-28\n");
    ev.code = 7;
    EXPECT_EQ(event_line(ev), "unknown-7\n");
}

TEST(FusefsEvents, WaitsThenEndsWhenTheSnapshotGoes) {
    FakeSource src;
    blksnap::Event ev;
    ev.device = {253, 0};
    ev.error_code = -28;
    src.events.push_back(ev);
    const auto id = blksnap::Uuid::parse(uuid_a);
    EXPECT_EQ(next_event_line(src, id, {}), "corrupted dev=253:0 err=-28\n");
    src.gone = true;
    EXPECT_EQ(next_event_line(src, id, {}), std::nullopt);
}

TEST(FusefsEvents, StopsWhenAsked) {
    FakeSource src;
    int calls = 0;
    try {
        next_event_line(
            src, blksnap::Uuid::parse(uuid_a), [&] { return ++calls > 3; }, 1);
        FAIL() << "no EINTR";
    } catch (const blksnap::Error& e) {
        EXPECT_EQ(e.code(), EINTR);
    }
    EXPECT_EQ(calls, 4);
}

TEST(FusefsTree, OneSnapshotOwnsTheTakenDevices) {
    FakeSource src;
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    src.devices = {device("vda", 0), device("vdb", 16)};
    Tree tree(src, std::chrono::milliseconds(0));
    EXPECT_EQ(*tree.list("/"), std::vector<std::string>{uuid_a});
    EXPECT_EQ(*tree.list("/" + uuid_a), (std::vector<std::string>{"events", "vda", "vdb"}));
    EXPECT_EQ(*tree.list("/" + uuid_a + "/vdb"),
              (std::vector<std::string>{"image.raw", "cbt.map", "info"}));
    auto n = tree.resolve("/" + uuid_a + "/vdb/image.raw");
    ASSERT_TRUE(n);
    EXPECT_FALSE(n->directory);
    EXPECT_EQ(n->size, 256ull << 20);
    EXPECT_EQ(n->device->image_path(), "/dev/blksnap-image_253:16");
    EXPECT_EQ(tree.resolve("/" + uuid_a + "/vda/cbt.map")->size, 4096u);
    EXPECT_TRUE(tree.resolve("/" + uuid_a + "/events"));
    EXPECT_FALSE(tree.resolve("/" + uuid_b));
    EXPECT_FALSE(tree.resolve("/devices"));
    EXPECT_FALSE(tree.resolve("/" + uuid_b + "/vda"));
    EXPECT_FALSE(tree.resolve("/" + uuid_a + "/vdc"));
    EXPECT_FALSE(tree.list("/" + uuid_a + "/vda/info"));
}

TEST(FusefsTree, EachSnapshotListsItsOwnDevices) {
    FakeSource src;
    src.ids = {blksnap::Uuid::parse(uuid_b), blksnap::Uuid::parse(uuid_a)};
    src.devices = {device("vda", 0, uuid_a), device("vdb", 16, uuid_b), device("vdc", 32, uuid_b)};
    Tree tree(src, std::chrono::milliseconds(0));
    EXPECT_EQ(*tree.list("/"), (std::vector<std::string>{uuid_a, uuid_b}));
    EXPECT_EQ(*tree.list("/" + uuid_a), (std::vector<std::string>{"events", "vda"}));
    EXPECT_EQ(*tree.list("/" + uuid_b), (std::vector<std::string>{"events", "vdb", "vdc"}));
    auto n = tree.resolve("/" + uuid_b + "/vdc/image.raw");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->device->image_path(), "/dev/blksnap-image_253:32");
    EXPECT_EQ(n->device->snapshot.str(), uuid_b);
    EXPECT_TRUE(tree.resolve("/" + uuid_a + "/vda/info"));
    EXPECT_FALSE(tree.resolve("/" + uuid_a + "/vdb"));
    EXPECT_FALSE(tree.resolve("/" + uuid_b + "/vda/image.raw"));
    EXPECT_FALSE(tree.resolve("/devices"));
    // A snapshot that goes away takes its devices along.
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    EXPECT_EQ(*tree.list("/"), std::vector<std::string>{uuid_a});
    EXPECT_FALSE(tree.resolve("/" + uuid_b + "/vdb"));
    EXPECT_EQ(*tree.list("/" + uuid_a), (std::vector<std::string>{"events", "vda"}));
}

TEST(FusefsTree, FollowsTheKernelAndCoalescesScans) {
    FakeSource src;
    Tree tree(src, std::chrono::hours(1));
    EXPECT_TRUE(tree.list("/")->empty());
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    tree.list("/");
    EXPECT_EQ(src.scans, 1); // within the interval: the same view
    Tree fresh(src, std::chrono::milliseconds(0));
    EXPECT_EQ(*fresh.list("/"), std::vector<std::string>{uuid_a});
    src.ids.clear();
    EXPECT_TRUE(fresh.list("/")->empty());
    EXPECT_FALSE(fresh.resolve("/" + uuid_a));
}

TEST(FusefsTree, RescansOnlyWhenTheKernelChanged) {
    FakeSource src;
    Tree tree(src, std::chrono::hours(1), std::chrono::milliseconds(0));
    EXPECT_TRUE(tree.list("/")->empty());
    EXPECT_EQ(src.scans, 1);
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    for (int i = 0; i < 100; ++i) // lookups share the view
        EXPECT_FALSE(tree.resolve("/" + uuid_a));
    EXPECT_EQ(src.scans, 1);
    // A take or a destroy (an image uevent): the next lookup sees it.
    src.changed = 1;
    EXPECT_TRUE(tree.resolve("/" + uuid_a));
    EXPECT_EQ(src.scans, 2);
    EXPECT_TRUE(tree.resolve("/" + uuid_a));
    EXPECT_EQ(src.scans, 2);
    // An event (invalidate()): the same.
    src.ids.clear();
    tree.invalidate();
    EXPECT_FALSE(tree.resolve("/" + uuid_a));
    EXPECT_EQ(src.scans, 3);
}

TEST(FusefsTree, ViewsReadJustAfterAChangeAreStale) {
    FakeSource src;
    Tree tree(src, std::chrono::hours(1), std::chrono::milliseconds(100));
    tree.view();
    EXPECT_EQ(src.scans, 1);
    // A take is told by its image's uevent before it ends: what is read
    // just then may miss the device, so lookups read again for a while...
    src.changed = 1;
    tree.view();
    tree.view();
    EXPECT_EQ(src.scans, 3);
    // ... and once it has settled, one more scan holds.
    std::this_thread::sleep_for(std::chrono::milliseconds(110));
    tree.view();
    tree.view();
    EXPECT_EQ(src.scans, 4);
}

TEST(FusefsTree, RescansAfterItsTimeToLive) {
    FakeSource src;
    Tree tree(src, std::chrono::milliseconds(50));
    tree.view();
    tree.view();
    EXPECT_EQ(src.scans, 1);
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    EXPECT_EQ(*tree.list("/"), std::vector<std::string>{uuid_a});
    EXPECT_EQ(src.scans, 2);
}

TEST(FusefsTree, ConcurrentLookupsShareOneScan) {
    FakeSource src;
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    Tree tree(src, std::chrono::hours(1));
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            for (int j = 0; j < 50; ++j)
                EXPECT_TRUE(tree.resolve("/" + uuid_a));
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(src.scans, 1);
}

TEST(FusefsTree, AFailedScanKeepsTheLastViewAndIsLogged) {
    FakeSource src;
    src.ids = {blksnap::Uuid::parse(uuid_a)};
    src.devices = {device("vda", 0)};
    Tree tree(src, std::chrono::milliseconds(0));
    std::vector<std::pair<int, std::string>> logged;
    log_capture([&](int prio, const std::string& m) { logged.emplace_back(prio, m); });
    EXPECT_EQ(*tree.list("/"), std::vector<std::string>{uuid_a});
    src.broken = true;
    EXPECT_EQ(*tree.list("/"), std::vector<std::string>{uuid_a});
    EXPECT_TRUE(tree.resolve("/" + uuid_a + "/vda/image.raw"));
    src.broken = false;
    src.ids.clear();
    EXPECT_TRUE(tree.list("/")->empty());
    log_capture({});
    std::vector<std::string> messages;
    for (const auto& [prio, m] : logged)
        messages.push_back(m);
    // Appearing and vanishing are logged; the failure once (not per
    // lookup), with its cause, and its end.
    const std::vector<std::string> want = {
        "snapshot " + uuid_a + " appeared",
        "snapshot " + uuid_a + ": vda shown (/dev/blksnap-image_253:0)",
        "cannot read the snapshots from the kernel (showing the last ones seen): "
        "snapshot_collect: Input/output error",
        "reading the snapshots from the kernel works again",
        "snapshot " + uuid_a + " vanished",
    };
    EXPECT_EQ(messages, want);
    EXPECT_EQ(logged[2].first, LOG_ERR);
}

TEST(FusefsTree, AFailedFirstScanShowsAnEmptyRoot) {
    FakeSource src;
    src.broken = true;
    Tree tree(src, std::chrono::milliseconds(0));
    log_capture([](int, const std::string&) {});
    EXPECT_TRUE(tree.list("/")->empty());
    log_capture({});
}

TEST(FusefsTree, ImageUevents) {
    using namespace std::string_literals;
    EXPECT_TRUE(image_uevent("add@/devices/virtual/block/blksnap-image_253:0\0ACTION=add\0"s));
    EXPECT_TRUE(image_uevent("remove@/devices/virtual/block/blksnap-image_8:16"s));
    EXPECT_FALSE(image_uevent("add@/devices/virtual/block/loop0\0DEVNAME=blksnap-image_x"s));
    EXPECT_FALSE(image_uevent("libudev\0/blksnap-image_253:0"s));
    EXPECT_FALSE(image_uevent(""));
}

TEST(FusefsExit, CleanStopsExitZero) {
    EXPECT_EQ(exit_status(0), 0); // unmounted
    EXPECT_EQ(exit_status(SIGTERM), 0);
    EXPECT_EQ(exit_status(SIGINT), 0);
    EXPECT_EQ(exit_status(SIGHUP), 0);
    EXPECT_EQ(exit_status(-EIO), 1);
    EXPECT_EQ(exit_status(-ENODEV), 1);
    EXPECT_EQ(exit_status(SIGKILL), 1);
    EXPECT_EQ(stop_message(0, "/snap"), "stopped: /snap was unmounted");
    EXPECT_EQ(stop_message(SIGTERM, "/snap"), "stopped by SIGTERM: unmounting /snap");
    EXPECT_EQ(stop_message(SIGHUP, "/snap"), "stopped by SIGHUP: unmounting /snap");
    EXPECT_EQ(stop_message(-EIO, "/snap"),
              "stopped on a failure (Input/output error): unmounting /snap");
}

TEST(FusefsInfo, Json) {
    auto d = device("vda", 0);
    d.error_code = -28;
    const auto j = nlohmann::json::parse(info_text(d));
    EXPECT_EQ(j["device"], "/dev/vda");
    EXPECT_EQ(j["major"], 253);
    EXPECT_EQ(j["minor"], 0);
    EXPECT_EQ(j["image"], "/dev/blksnap-image_253:0");
    EXPECT_EQ(j["capacity"], 256ull << 20);
    EXPECT_EQ(j["block_size"], 65536);
    EXPECT_EQ(j["block_count"], 4096);
    EXPECT_EQ(j["snapshot"], uuid_a);
    EXPECT_EQ(j["error_code"], -28);
    EXPECT_EQ(j["corrupted"], true);
}

TEST(FusefsReadahead, FindsTheMountDevice) {
    std::istringstream mi("22 1 0:21 / /proc rw - proc proc rw\n"
                          "40 22 0:45 / /snap rw,nosuid - fuse.blksnapfs blksnapfs rw\n"
                          "41 22 0:46 / /my\\040snap rw - fuse.blksnapfs blksnapfs rw\n");
    EXPECT_EQ(mount_device(mi, "/snap"), "0:45");
    mi.clear();
    mi.seekg(0);
    EXPECT_EQ(mount_device(mi, "/my snap"), "0:46");
    mi.clear();
    mi.seekg(0);
    EXPECT_EQ(mount_device(mi, "/other"), std::nullopt);
}

TEST(FusefsHandles, BoundedTable) {
    HandleTable table(HandleLimits{.images = 1, .events = 1, .others = 2});
    auto make = [](Handle::Kind k) {
        auto h = std::make_unique<Handle>();
        h->kind = k;
        return h;
    };
    const uid_t user = 1000;
    const auto a = table.add(make(Handle::Kind::events), user);
    EXPECT_THROW(table.add(make(Handle::Kind::events), user), blksnap::Error);
    const auto b = table.add(make(Handle::Kind::info), user);
    table.add(make(Handle::Kind::cbt_map), user);
    EXPECT_THROW(table.add(make(Handle::Kind::info), user), blksnap::Error);
    EXPECT_NE(a, b);
    EXPECT_EQ(table.find(a)->kind, Handle::Kind::events);
    EXPECT_EQ(table.find(a)->owner, user);
    table.remove(a);
    EXPECT_EQ(table.find(a), nullptr);
    table.add(make(Handle::Kind::events), user);
    EXPECT_EQ(table.size(), 3u);
}

// The limits are each user's: one at its limits takes nothing from another
// user, and root (the backup agent) is never refused. Before, the limits
// were shared: a user holding every image.raw made root's open fail.
TEST(FusefsHandles, LimitsPerUserRootExempt) {
    HandleTable table(HandleLimits{.images = 2, .events = 2, .others = 3, .events_all = 3});
    auto make = [](Handle::Kind k) {
        auto h = std::make_unique<Handle>();
        h->kind = k;
        return h;
    };
    auto emfile = [&](Handle::Kind k, uid_t uid) {
        try {
            table.add(make(k), uid);
        } catch (const blksnap::Error& e) {
            return e.code() == EMFILE;
        }
        return false;
    };
    const uid_t alice = 1000, bob = 1001;
    std::vector<std::uint64_t> alices;
    for (int i = 0; i < 2; ++i)
        alices.push_back(table.add(make(Handle::Kind::image), alice));
    for (int i = 0; i < 3; ++i)
        alices.push_back(table.add(make(Handle::Kind::info), alice));
    EXPECT_TRUE(emfile(Handle::Kind::image, alice));
    EXPECT_TRUE(emfile(Handle::Kind::cbt_map, alice));
    EXPECT_EQ(table.count(alice, Handle::Kind::image), 2u);
    EXPECT_EQ(table.count(alice, Handle::Kind::info), 3u); // cbt.map and info together
    // Bob has his own.
    const auto bobs = table.add(make(Handle::Kind::image), bob);
    table.add(make(Handle::Kind::image), bob);
    EXPECT_TRUE(emfile(Handle::Kind::image, bob));
    table.add(make(Handle::Kind::cbt_map), bob);
    // Root is not counted and never refused.
    std::vector<std::uint64_t> roots;
    for (int i = 0; i < 100; ++i) {
        roots.push_back(table.add(make(Handle::Kind::image), 0));
        roots.push_back(table.add(make(Handle::Kind::events), 0));
        roots.push_back(table.add(make(Handle::Kind::info), 0));
    }
    EXPECT_EQ(table.count(0, Handle::Kind::image), 0u);
    EXPECT_EQ(table.find(roots[0])->owner, 0u);
    for (auto id : roots)
        table.remove(id);
    EXPECT_EQ(table.count(alice, Handle::Kind::image), 2u);
    // A close gives the user back one.
    table.remove(alices[0]);
    EXPECT_EQ(table.count(alice, Handle::Kind::image), 1u);
    table.add(make(Handle::Kind::image), alice);
    EXPECT_TRUE(emfile(Handle::Kind::image, alice));
    table.remove(bobs);
    EXPECT_EQ(table.count(bob, Handle::Kind::image), 1u);

    // events: each user's limit, and all users but root together at most
    // events_all (each waiting reader holds a request thread); root's
    // events readers are not among them.
    table.add(make(Handle::Kind::events), alice);
    const auto alice_ev = table.add(make(Handle::Kind::events), alice);
    EXPECT_TRUE(emfile(Handle::Kind::events, alice));
    table.add(make(Handle::Kind::events), bob);
    EXPECT_TRUE(emfile(Handle::Kind::events, bob)); // 3 of events_all
    const auto root_ev = table.add(make(Handle::Kind::events), 0);
    table.remove(alice_ev);
    table.add(make(Handle::Kind::events), bob);
    EXPECT_EQ(table.count(bob, Handle::Kind::events), 2u);
    table.remove(root_ev);
}

namespace {

// A regular file of SIZE random bytes under /var/tmp (O_DIRECT works there).
struct TempImage {
    std::string path;
    std::vector<char> data;
    explicit TempImage(std::size_t size) : data(size) {
        char name[] = "/var/tmp/blksnapfs-test-XXXXXX";
        const int fd = mkstemp(name);
        path = name;
        std::mt19937 rng(42);
        for (auto& c : data)
            c = static_cast<char>(rng());
        EXPECT_EQ(write(fd, data.data(), size), static_cast<ssize_t>(size));
        close(fd);
    }
    ~TempImage() { unlink(path.c_str()); }
};

} // namespace

TEST(FusefsImageFile, ReadsAnyOffsetAndLength) {
    const std::size_t size = (5u << 20) + 4096; // not a whole number of blocks
    TempImage img(size);
    ImageFile file(img.path, ImageFileOptions{.block = 1u << 20, .depth = 3});
    EXPECT_EQ(file.size(), size);
    std::vector<std::byte> buf(300000);
    // Sequential in odd pieces, then random.
    std::uint64_t off = 0;
    while (off < size) {
        const long n = file.read(buf, off);
        ASSERT_GT(n, 0);
        ASSERT_EQ(std::memcmp(buf.data(), img.data.data() + off, n), 0) << off;
        off += n;
    }
    EXPECT_EQ(off, size);
    EXPECT_EQ(file.read(buf, size), 0);
    std::mt19937 rng(1);
    for (int i = 0; i < 200; ++i) {
        const std::uint64_t o = rng() % size;
        const std::size_t len = 1 + rng() % buf.size();
        const long n = file.read(std::span(buf.data(), len), o);
        ASSERT_EQ(static_cast<std::uint64_t>(n), std::min<std::uint64_t>(len, size - o));
        ASSERT_EQ(std::memcmp(buf.data(), img.data.data() + o, n), 0) << o;
    }
}

TEST(FusefsImageFile, HandsOverWholeBlocks) {
    const std::size_t block = 1u << 20;
    const std::size_t size = 3 * block + 4096; // the last block is short
    TempImage img(size);
    ImageFile file(img.path, ImageFileOptions{.block = block, .depth = 3});
    ImageFile::Buffer buf;
    ASSERT_EQ(file.take_block(0, block, buf), static_cast<long>(block));
    ASSERT_TRUE(buf);
    EXPECT_EQ(std::memcmp(buf.get(), img.data.data(), block), 0);
    EXPECT_EQ(file.take_block(4096, block, buf), 0);
    EXPECT_FALSE(buf);
}

TEST(FusefsImageFile, ReadOnlyUnlessWritable) {
    TempImage img(1u << 20);
    ImageFile ro(img.path);
    const std::byte b[1]{};
    EXPECT_EQ(ro.write(b, 0), -EROFS);

    ImageFile rw(img.path, ImageFileOptions{.writable = true});
    std::vector<std::byte> buf(8192);
    ASSERT_EQ(ro.read(buf, 0), 8192); // cached now
    std::vector<std::byte> patch(5000, std::byte{0x5a});
    ASSERT_EQ(rw.write(patch, 1000), 5000);
    ASSERT_EQ(rw.sync(), 0);
    ASSERT_EQ(ro.read(buf, 0), 8192); // other files see it too
    EXPECT_EQ(buf[999], static_cast<std::byte>(img.data[999]));
    EXPECT_EQ(buf[1000], std::byte{0x5a});
    EXPECT_EQ(buf[5999], std::byte{0x5a});
    EXPECT_EQ(buf[6000], static_cast<std::byte>(img.data[6000]));
}

TEST(FusefsImageFile, AFailedReadIsEioAndLogged) {
    TempImage img(1u << 20);
    ImageFile file(img.path, ImageFileOptions{.block = 65536, .depth = 2});
    // The file shrinks under the reader: the device read comes back short.
    ASSERT_EQ(truncate(img.path.c_str(), 4096), 0);
    std::vector<std::string> logged;
    log_capture([&](int prio, const std::string& m) {
        if (prio == LOG_ERR)
            logged.push_back(m);
    });
    std::vector<std::byte> buf(4096);
    EXPECT_EQ(file.read(buf, 512 * 1024), -EIO);
    log_capture({});
    ASSERT_EQ(logged.size(), 1u);
    EXPECT_NE(logged[0].find("read of " + img.path + " at 524288 failed, EIO"), std::string::npos)
        << logged[0];
}

blksnapfs::Options parse(std::vector<std::string> words) {
    words.insert(words.begin(), "blksnapfs");
    std::vector<char*> argv;
    for (auto& w : words)
        argv.push_back(w.data());
    blksnapfs::FuseArgs args(int(argv.size()), argv.data());
    return blksnapfs::parse_options(args.get());
}

TEST(FusefsOptions, Group) {
    EXPECT_EQ(parse({"/mnt"}).group, "");
    EXPECT_EQ(parse({"--group=disk", "/mnt"}).group, "disk");
    EXPECT_EQ(parse({"--group", "backup", "-o", "allow_other"}).group, "backup");
    EXPECT_EQ(parse({"--group", "backup"}).mountpoint, "/snap");
    EXPECT_THROW(parse({"--group="}), blksnapfs::UsageError);
    EXPECT_EQ(blksnapfs::resolve_group("root"), gid_t(0));
    EXPECT_EQ(blksnapfs::resolve_group("4242"), gid_t(4242));
    EXPECT_FALSE(blksnapfs::resolve_group("no-such-group-here"));
    EXPECT_FALSE(blksnapfs::resolve_group(""));
}
