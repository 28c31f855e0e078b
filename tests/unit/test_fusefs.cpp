// blksnapfs's pure logic: path parsing, alignment, event lines, mount
// lookup, the tree against a fake kernel, the handle table, and image
// streams over a regular file.
#include "align.hpp"
#include "event_line.hpp"
#include "events_file.hpp"
#include "fuse_session.hpp"
#include "handles.hpp"
#include "image_stream.hpp"
#include "info.hpp"
#include "options.hpp"
#include "path.hpp"
#include "readahead.hpp"
#include "tree.hpp"

#include <blksnap/error.hpp>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <sstream>
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

    std::vector<blksnap::Uuid> snapshots() override {
        ++scans;
        return ids;
    }
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

TEST(FusefsAlign, ChunksAndRanges) {
    static_assert(align_down(4097, 4096) == 4096);
    static_assert(align_up(4097, 4096) == 8192);
    static_assert(align_up(0, 512) == 0);
    constexpr auto mib = 1ull << 20;
    auto s = chunks_covering(mib - 1, 2, mib);
    EXPECT_EQ(s.first, 0u);
    EXPECT_EQ(s.last, 1u);
    s = chunks_covering(3 * mib, mib, mib);
    EXPECT_EQ(s.first, 3u);
    EXPECT_EQ(s.last, 3u);
    // The last chunk of a 2.5 MiB + 100 bytes source, logical blocks of 512.
    const std::uint64_t size = 2 * mib + mib / 2 + 100;
    auto r = chunk_range(2, mib, size, 512);
    EXPECT_EQ(r.offset, 2 * mib);
    EXPECT_EQ(r.length, mib / 2 + 512);
    EXPECT_EQ(chunk_range(3, mib, size, 512).length, 0u);
    EXPECT_EQ(clamp_length(size - 10, 4096, size), 10u);
    EXPECT_EQ(clamp_length(size, 4096, size), 0u);
    EXPECT_EQ(clamp_length(0, 4096, size), 4096u);
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
    const auto a = table.add(make(Handle::Kind::events));
    EXPECT_THROW(table.add(make(Handle::Kind::events)), blksnap::Error);
    const auto b = table.add(make(Handle::Kind::info));
    table.add(make(Handle::Kind::cbt_map));
    EXPECT_THROW(table.add(make(Handle::Kind::info)), blksnap::Error);
    EXPECT_NE(a, b);
    EXPECT_EQ(table.find(a)->kind, Handle::Kind::events);
    table.remove(a);
    EXPECT_EQ(table.find(a), nullptr);
    table.add(make(Handle::Kind::events));
    EXPECT_EQ(table.size(), 3u);
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

TEST(FusefsImageStream, ReadsAnyOffsetAndLength) {
    const std::size_t size = (5u << 20) + 4096; // not a whole number of chunks
    TempImage img(size);
    ImageStream stream(img.path, size, StreamOptions{.chunk = 1u << 20, .depth = 3});
    std::vector<std::byte> buf(300000);
    // Sequential in odd pieces, then random.
    std::uint64_t off = 0;
    while (off < size) {
        const long n = stream.read(buf, off);
        ASSERT_GT(n, 0);
        ASSERT_EQ(std::memcmp(buf.data(), img.data.data() + off, n), 0) << off;
        off += n;
    }
    EXPECT_EQ(off, size);
    EXPECT_EQ(stream.read(buf, size), 0);
    std::mt19937 rng(1);
    for (int i = 0; i < 200; ++i) {
        const std::uint64_t o = rng() % size;
        const std::size_t len = 1 + rng() % buf.size();
        const long n = stream.read(std::span(buf.data(), len), o);
        ASSERT_EQ(static_cast<std::uint64_t>(n), std::min<std::uint64_t>(len, size - o));
        ASSERT_EQ(std::memcmp(buf.data(), img.data.data() + o, n), 0) << o;
    }
}

TEST(FusefsImageStream, HandsOverWholeChunks) {
    const std::size_t chunk = 1u << 20;
    const std::size_t size = 3 * chunk + 4096; // the last chunk is short
    TempImage img(size);
    ImageStream stream(img.path, size, StreamOptions{.chunk = chunk, .depth = 3});
    ImageStream::Buffer buf;
    // Whole chunks, in order, all kept: the stream never writes into a
    // buffer it gave away (its later reads and read-ahead go elsewhere).
    std::vector<std::pair<std::uint64_t, ImageStream::Buffer>> taken;
    for (std::uint64_t off = 0; off < size; off += chunk) {
        const long n = stream.take_chunk(off, chunk, buf);
        ASSERT_EQ(static_cast<std::uint64_t>(n), std::min<std::uint64_t>(chunk, size - off));
        ASSERT_TRUE(buf);
        taken.emplace_back(n, std::move(buf));
    }
    for (std::size_t i = 0; i < taken.size(); ++i)
        EXPECT_EQ(std::memcmp(taken[i].second.get(), img.data.data() + i * chunk, taken[i].first),
                  0)
            << i;
    // The same chunk twice: read again, not a buffer already given away.
    ASSERT_EQ(stream.take_chunk(chunk, chunk, buf), static_cast<long>(chunk));
    ImageStream::Buffer again;
    ASSERT_EQ(stream.take_chunk(chunk, chunk, again), static_cast<long>(chunk));
    EXPECT_NE(buf.get(), again.get());
    EXPECT_EQ(std::memcmp(again.get(), img.data.data() + chunk, chunk), 0);
    // And read() still finds it.
    std::vector<std::byte> copy(chunk);
    ASSERT_EQ(stream.read(copy, chunk), static_cast<long>(chunk));
    EXPECT_EQ(std::memcmp(copy.data(), img.data.data() + chunk, chunk), 0);
    // Anything but a whole chunk is left to read(): not aligned, too short,
    // longer than a chunk, past the end.
    EXPECT_EQ(stream.take_chunk(4096, chunk, buf), 0);
    EXPECT_FALSE(buf);
    EXPECT_EQ(stream.take_chunk(0, chunk - 1, buf), 0);
    EXPECT_FALSE(buf);
    EXPECT_EQ(stream.take_chunk(0, 2 * chunk, buf), 0);
    EXPECT_FALSE(buf);
    EXPECT_EQ(stream.take_chunk(4 * chunk, chunk, buf), 0);
    EXPECT_FALSE(buf);
}

TEST(FusefsImageStream, ReadOnlyUnlessWritable) {
    TempImage img(1u << 20);
    ImageStream ro(img.path, img.data.size());
    const std::byte b[1]{};
    EXPECT_EQ(ro.write(b, 0), -EROFS);

    ImageStream rw(img.path, img.data.size(), StreamOptions{.writable = true});
    std::vector<std::byte> buf(8192);
    ASSERT_EQ(rw.read(buf, 0), 8192); // cached now
    std::vector<std::byte> patch(5000, std::byte{0x5a});
    ASSERT_EQ(rw.write(patch, 1000), 5000);
    ASSERT_EQ(rw.sync(), 0);
    ASSERT_EQ(ro.read(buf, 0), 8192); // other streams see it too
    EXPECT_EQ(buf[999], static_cast<std::byte>(img.data[999]));
    EXPECT_EQ(buf[1000], std::byte{0x5a});
    EXPECT_EQ(buf[5999], std::byte{0x5a});
    EXPECT_EQ(buf[6000], static_cast<std::byte>(img.data[6000]));
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
