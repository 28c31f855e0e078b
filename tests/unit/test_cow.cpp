// cow: errors, UUIDs, the filter commands, snapshot sessions, events and
// interception detection, against the fake kernel.
#include "fake_kernel.hpp"
#include "tmp_dir.hpp"

#include <blksnap/error.hpp>
#include <blksnap/events.hpp>
#include <blksnap/linux_backend.hpp>
#include <blksnap/snapshot.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace blksnap::test {
namespace {

TEST(Error, CarriesErrnoAndContext) {
    Error e(EBUSY, context("attach", "/dev/vdb"));
    EXPECT_EQ(e.code(), EBUSY);
    EXPECT_STREQ(e.what(), "attach /dev/vdb: Device or resource busy");
    EXPECT_STREQ(Error(ENOENT, "", "blksnap module not loaded").what(),
                 "blksnap module not loaded");
}

TEST(Error, AReasonKeepsTheErrnoText) {
    EXPECT_STREQ(Error(EROFS, "save /dev/vdb", "cannot write to /x").what(),
                 "save /dev/vdb: cannot write to /x (Read-only file system)");
    // Not twice.
    EXPECT_STREQ(Error(ENOSPC, "write /x", "No space left on device at offset 0").what(),
                 "write /x: No space left on device at offset 0");
}

TEST(Filter, PartitionNamesOfAWholeDisk) {
    TmpDir tmp;
    const auto sys = tmp / "sys";
    std::filesystem::create_directories(sys / "vdb/vdb2");
    std::filesystem::create_directories(sys / "vdb/vdb1");
    std::filesystem::create_directories(sys / "vdb/queue");
    std::ofstream(sys / "vdb/vdb1/partition") << "1\n";
    std::ofstream(sys / "vdb/vdb2/partition") << "2\n";
    std::ofstream(tmp / "vdb") << "";
    std::ofstream(tmp / "vdb1") << "";
    std::filesystem::create_directory_symlink(sys / "vdb/vdb1", sys / "vdb1");
    EXPECT_EQ(partition_names((tmp / "vdb").string(), sys),
              (std::vector<std::string>{"vdb1", "vdb2"}));
    EXPECT_TRUE(partition_names((tmp / "vdb1").string(), sys).empty());
}

TEST(Uuid, RoundTripsAndRejectsBadText) {
    const std::string text = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    const Uuid id = Uuid::parse(text);
    EXPECT_EQ(id.str(), text);
    EXPECT_EQ(id.bytes()[0], 0x0f);
    EXPECT_EQ(id.bytes()[15], 0xf0);
    EXPECT_EQ(Uuid(id.raw()), id);
    EXPECT_FALSE(id.is_null());
    EXPECT_TRUE(Uuid().is_null());
    EXPECT_EQ(Uuid::parse("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"), id); // upper case too
    for (const char* bad : {"", "0f1e2d3c", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fz",
                            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f00"}) {
        EXPECT_FALSE(Uuid::try_parse(bad)) << bad;
        try {
            Uuid::parse(bad);
            ADD_FAILURE() << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), EINVAL);
        }
    }
}

class FilterTest : public ::testing::Test {
protected:
    FakeKernel kernel;
    void SetUp() override {
        kernel.add_device("/dev/vdb", 10 * 65536 + 4096, 65536).attached = true;
    }
};

TEST_F(FilterTest, CbtInfoDecodesTheKernelStruct) {
    kernel.devices["/dev/vdb"].info.changes_number = 7;
    const CbtInfo info = DeviceFilter(kernel, "/dev/vdb").cbt_info();
    EXPECT_EQ(info.device_capacity, 10u * 65536 + 4096);
    EXPECT_EQ(info.block_size, 65536u);
    EXPECT_EQ(info.block_count, 11u);
    EXPECT_EQ(info.changes_number, 7);
    EXPECT_EQ(info.generation_id, kernel.devices["/dev/vdb"].info.generation_id);
}

TEST_F(FilterTest, ShortReplyIsAProtocolError) {
    kernel.short_optlen = true;
    try {
        DeviceFilter(kernel, "/dev/vdb").cbt_info();
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EPROTO);
        EXPECT_NE(std::string(e.what()).find("cbtinfo /dev/vdb"), std::string::npos) << e.what();
    }
}

TEST_F(FilterTest, ErrorsNameCommandAndDevice) {
    kernel.devices["/dev/vdb"].attached = false;
    try {
        DeviceFilter(kernel, "/dev/vdb").snapshot_info();
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_STREQ(e.what(), "snapshotinfo /dev/vdb: No such file or directory");
    }
}

TEST_F(FilterTest, AttachReportsAlreadyAttached) {
    DeviceFilter f(kernel, "/dev/vdb");
    EXPECT_FALSE(f.attach());
    f.detach();
    EXPECT_TRUE(f.attach());
}

TEST_F(FilterTest, MarkDirtyPassesRanges) {
    const std::vector<SectorRange> ranges{{0, 8}, {1000, 24}};
    DeviceFilter(kernel, "/dev/vdb").mark_dirty(ranges);
    EXPECT_EQ(kernel.devices["/dev/vdb"].dirty, ranges);
    const std::vector<SectorRange> beyond{{1300, 8}};
    EXPECT_THROW(DeviceFilter(kernel, "/dev/vdb").mark_dirty(beyond), Error);
}

TEST(Snapshot, CreateAddsDevicesAndDestroysOnScopeExit) {
    FakeKernel kernel;
    kernel.add_device("/dev/vdb", 1 << 20, 4096);
    kernel.add_device("/dev/vdc", 1 << 20, 4096).attached = true; // already attached is fine
    TmpDir dir;
    Uuid id;
    {
        Snapshot snap =
            Snapshot::create(kernel, dir.path(), 100 * 1024 * 1024 + 1, {"/dev/vdb", "/dev/vdc"});
        id = snap.id();
        ASSERT_EQ(kernel.snapshots.count(id), 1u);
        const auto& s = kernel.snapshots[id];
        EXPECT_EQ(s.limit_sectors, 204801u); // rounded up to whole sectors
        EXPECT_TRUE(s.storage_unnamed);      // the directory became an O_TMPFILE file
        EXPECT_EQ(s.devices, (std::set<std::string>{"/dev/vdb", "/dev/vdc"}));
        EXPECT_TRUE(kernel.devices["/dev/vdb"].attached);
        snap.take();
        EXPECT_EQ(snap.info("/dev/vdb").image_path(), "/dev/blksnap-image_252:0");
    }
    EXPECT_EQ(kernel.snapshots.count(id), 0u);
    EXPECT_EQ(kernel.calls.back(), "snapshot_destroy " + id.str());
}

TEST(Snapshot, FailedAddDestroysTheNewSnapshot) {
    FakeKernel kernel;
    kernel.add_device("/dev/vdb", 1 << 20, 4096);
    kernel.fail_next("attach", "/dev/vdb", EBUSY);
    TmpDir dir;
    try {
        Snapshot::create(kernel, dir.path(), 1 << 30, {"/dev/vdb"});
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "attach /dev/vdb: Device or resource busy");
    }
    EXPECT_TRUE(kernel.snapshots.empty());
}

TEST(Snapshot, AddNamesTheSnapshotThatHoldsTheDevice) {
    FakeKernel kernel;
    kernel.add_device("/dev/vdb", 1 << 20, 4096);
    kernel.add_device("/dev/vdc", 1 << 20, 4096);
    TmpDir dir;
    Snapshot first = Snapshot::create(kernel, dir.path(), 1 << 30, {"/dev/vdc", "/dev/vdb"});
    Snapshot second = Snapshot::create(kernel, dir.path(), 1 << 30);
    try {
        second.add_device("/dev/vdb");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EBUSY);
        EXPECT_EQ(std::string(e.what()), "snapshotadd /dev/vdb: held by snapshot " +
                                             first.id().str() +
                                             " (destroy it first, or wait for it) (Device or "
                                             "resource busy)");
    }
    try {
        first.add_device("/dev/vdb");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(std::string(e.what()), "snapshotadd /dev/vdb: already in this snapshot (" +
                                             first.id().str() + ") (Device or resource busy)");
    }
    // Busy for a reason of the kernel's own (no snapshot holds it): its error as it is.
    kernel.fail_next("snapshotadd", "/dev/vdc", EBUSY);
    Snapshot third = Snapshot::create(kernel, dir.path(), 1 << 30);
    first.destroy();
    try {
        third.add_device("/dev/vdc");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EBUSY);
        EXPECT_EQ(std::string(e.what()).find("held by"), std::string::npos) << e.what();
    }
}

TEST(Snapshot, ReleaseKeepsIt) {
    FakeKernel kernel;
    TmpDir dir;
    Uuid id = Snapshot::create(kernel, dir / "diff", 1 << 20).release();
    EXPECT_EQ(kernel.snapshots.count(id), 1u);
    EXPECT_FALSE(kernel.snapshots[id].storage_unnamed); // a named file was created
    EXPECT_TRUE(std::filesystem::is_regular_file(dir / "diff"));
    {
        Snapshot moved = [&] {
            Snapshot s = Snapshot::open(kernel, id, true);
            return s;
        }();
    }
    EXPECT_EQ(kernel.snapshots.count(id), 0u);
}

TEST(Events, DecodesTheCorruptedBody) {
    blksnap_snapshot_event raw{};
    raw.code = blksnap_event_code_corrupted;
    raw.time_label = 123456789;
    blksnap_event_corrupted body{8, 16, -ENOSPC};
    std::memcpy(raw.data, &body, sizeof(body));
    const Event ev = decode_event(raw);
    EXPECT_EQ(ev.name(), "corrupted");
    EXPECT_EQ(ev.device.str(), "8:16");
    EXPECT_EQ(ev.error_code, -ENOSPC);
    EXPECT_EQ(ev.time_label, 123456789);
    raw.code = 9;
    EXPECT_EQ(decode_event(raw).name(), "unknown-9");
    EXPECT_EQ(decode_event(raw).error_code, 0);
}

TEST(Events, FollowEndsWhenTheSnapshotGoes) {
    FakeKernel kernel;
    TmpDir dir;
    const Uuid id = Snapshot::create(kernel, dir.path(), 1 << 20).release();
    auto& s = kernel.snapshots[id];
    s.events.push_back({blksnap_event_code_corrupted, 1, {8, 0}, -EIO});
    s.events.push_back({blksnap_event_code_corrupted, 2, {8, 16}, -ENOSPC});
    s.vanish_when_drained = true;
    std::vector<std::int64_t> seen;
    follow_events(kernel, id, [&](const Event& ev) {
        seen.push_back(ev.time_label);
        return true;
    });
    EXPECT_EQ(seen, (std::vector<std::int64_t>{1, 2}));
}

TEST(Events, FollowStopsWhenAsked) {
    FakeKernel kernel;
    TmpDir dir;
    const Uuid id = Snapshot::create(kernel, dir.path(), 1 << 20).release();
    kernel.snapshots[id].events.push_back({blksnap_event_code_corrupted, 1, {8, 0}, -EIO});
    int timeouts = 0;
    follow_events(
        kernel, id, [](const Event&) { return true; }, std::chrono::milliseconds(1),
        [&] { return ++timeouts > 3; });
    EXPECT_EQ(timeouts, 4);
    EXPECT_EQ(kernel.snapshots.count(id), 1u);
}

TEST(Interception, DetectedFromTheModuleParameter) {
    TmpDir dir;
    EXPECT_THROW(
        {
            try {
                detect_interception(dir / "none");
            } catch (const Error& e) {
                EXPECT_EQ(e.code(), ENOENT);
                EXPECT_STREQ(e.what(), "blksnap module not loaded");
                throw;
            }
        },
        Error);
    const auto module = dir / "blksnap";
    std::filesystem::create_directories(module / "parameters");
    EXPECT_EQ(detect_interception(module), Interception::blkfilter); // v6 module: no parameter
    auto set = [&](const char* value) {
        std::ofstream(module / "parameters" / "interception") << value;
    };
    set("ftrace\n");
    EXPECT_EQ(detect_interception(module), Interception::ftrace);
    set("blkfilter\n");
    EXPECT_EQ(detect_interception(module), Interception::blkfilter);
    set("auto\n");
    EXPECT_THROW(detect_interception(module), Error);
}

// A kernel that refuses unsigned modules: the error says why, and how to
// enroll the signing key; otherwise it stays the plain one.
TEST(Interception, RefusedModuleSaysHowToEnrollTheKey) {
    TmpDir dir; // a sysfs root
    const auto sys = dir.path();
    EXPECT_EQ(module_refusal_hint(sys), "");
    std::filesystem::create_directories(sys / "kernel" / "security");
    std::filesystem::create_directories(sys / "module" / "module" / "parameters");
    std::ofstream(sys / "kernel" / "security" / "lockdown") << "[none] integrity confidentiality\n";
    std::ofstream(sys / "module" / "module" / "parameters" / "sig_enforce") << "N\n";
    EXPECT_EQ(module_refusal_hint(sys), "");
    std::ofstream(sys / "module" / "module" / "parameters" / "sig_enforce") << "Y\n";
    EXPECT_THAT(module_refusal_hint(sys), testing::StartsWith("module.sig_enforce is on and"));
    std::ofstream(sys / "kernel" / "security" / "lockdown") << "none [integrity] confidentiality\n";
    const auto hint = module_refusal_hint(sys);
    EXPECT_THAT(hint, testing::StartsWith("the kernel is locked down (integrity, Secure Boot)"));
    EXPECT_THAT(hint, testing::HasSubstr("mokutil --import /var/lib/dkms/mok.pub"));
    try {
        detect_interception(sys / "module" / "blksnap");
        ADD_FAILURE() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_EQ(std::string(e.what()), "blksnap module not loaded: " + hint);
    }
}

TEST(LinuxBackend, RefusesNonBlockDevices) {
    LinuxBackend ftrace(Interception::ftrace), blkfilter(Interception::blkfilter);
    for (KernelBackend* b :
         {static_cast<KernelBackend*>(&ftrace), static_cast<KernelBackend*>(&blkfilter)}) {
        try {
            b->attach("/dev/null");
            FAIL();
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ENOTBLK);
            EXPECT_NE(std::string(e.what()).find("/dev/null"), std::string::npos);
        }
    }
}

} // namespace
} // namespace blksnap::test
