// cbt persistence: the block layer's counters, device identity, and when a
// saved change map may be loaded again.
#include "tmp_dir.hpp"

#include <blksnap/cbt/persist.hpp>
#include <blksnap/error.hpp>

#include <fstream>
#include <gtest/gtest.h>

namespace blksnap::test {
namespace {

namespace fs = std::filesystem;
using cbt::CbtState;
using cbt::Observed;
using cbt::SaveRecord;
using cbt::WriteCounters;

void put(const fs::path& path, const std::string& text) {
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text << '\n';
}

// A stat line with WRITES completed and SECTORS written, DISCARDS completed
// and DSECTORS discarded.
std::string stat_line(unsigned writes, unsigned sectors, unsigned discards = 0,
                      unsigned dsectors = 0) {
    return "10 0 80 5 " + std::to_string(writes) + " 0 " + std::to_string(sectors) + " 7 0 12 12 " +
           std::to_string(discards) + " 0 " + std::to_string(dsectors) + " 0 0 0";
}

class FakeSysfs : public ::testing::Test {
protected:
    TmpDir tmp;
    fs::path sys = tmp / "sys";
    std::string dev = (tmp / "vdb").string();

    void SetUp() override {
        put(dev, "");
        put(sys / "vdb/stat", stat_line(3, 24));
        put(sys / "vdb/inflight", "0 0");
        put(sys / "vdb/size", "131072");
        put(sys / "vdb/serial", "disk-42");
        put(sys / "vdb/vdb1/stat", stat_line(2, 16));
        put(sys / "vdb/vdb1/inflight", "0 1");
        put(sys / "vdb/vdb1/partition", "1");
        put(sys / "vdb/vdb1/size", "65536");
        put(sys / "vdb/queue/stat_is_not_a_partition", "");
        put(sys / "vdb/queue/iostats", "1");
    }
};

TEST_F(FakeSysfs, CountsTheDiskAndItsPartitions) {
    const WriteCounters c = cbt::write_counters(dev, sys);
    EXPECT_EQ(c.completed.size(), 2u);
    EXPECT_EQ(c.completed.at("vdb"), (cbt::WriteCount{3, 24, 0, 0}));
    EXPECT_EQ(c.completed.at("vdb1"), (cbt::WriteCount{2, 16, 0, 0}));
    EXPECT_EQ(c.in_flight, 1u);
    EXPECT_FALSE(c.none());
}

TEST_F(FakeSysfs, DiscardsCount) {
    put(sys / "vdb/stat", stat_line(3, 24, 2, 4096));
    const WriteCounters c = cbt::write_counters(dev, sys);
    EXPECT_EQ(c.completed.at("vdb"), (cbt::WriteCount{3, 24, 2, 4096}));
    WriteCounters only_discards;
    only_discards.completed["vdb"] = {0, 0, 1, 8};
    EXPECT_FALSE(only_discards.none());
}

TEST_F(FakeSysfs, AStatFileWithoutDiscardFieldsIsRefused) {
    put(sys / "vdb/stat", "10 0 80 5 3 0 24 7 0 12 12");
    try {
        cbt::write_counters(dev, sys);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EPROTO);
    }
}

// A partition: its own counts, and under the disk's name what the disk
// counted beyond all its partitions (written through the whole disk).
TEST_F(FakeSysfs, PartitionCountsWritesThroughItsWholeDisk) {
    put(sys / "vdb/vdb2/stat", stat_line(1, 8));
    put(sys / "vdb/vdb2/inflight", "0 0");
    put(sys / "vdb/vdb2/partition", "2");
    put(sys / "vdb/stat", stat_line(3, 24)); // 2 + 1 writes: none direct
    const std::string part = (tmp / "vdb1").string();
    put(part, "");
    fs::create_directory_symlink(sys / "vdb/vdb1", sys / "vdb1");
    WriteCounters c = cbt::write_counters(part, sys);
    EXPECT_EQ(c.completed.size(), 2u);
    EXPECT_EQ(c.completed.at("vdb1"), (cbt::WriteCount{2, 16, 0, 0}));
    EXPECT_EQ(c.completed.at("vdb"), (cbt::WriteCount{0, 0, 0, 0}));
    EXPECT_EQ(c.in_flight, 1u);
    // A write to the other partition changes nothing of vdb1's.
    put(sys / "vdb/vdb2/stat", stat_line(2, 16));
    put(sys / "vdb/stat", stat_line(4, 32));
    EXPECT_EQ(cbt::write_counters(part, sys), c);
    // One through the whole disk does.
    put(sys / "vdb/stat", stat_line(5, 40, 1, 8));
    c = cbt::write_counters(part, sys);
    EXPECT_EQ(c.completed.at("vdb"), (cbt::WriteCount{1, 8, 1, 8}));
    EXPECT_TRUE(cbt::counts_writes(part, sys));
}

TEST_F(FakeSysfs, IostatsOffCountsNothing) {
    EXPECT_TRUE(cbt::counts_writes(dev, sys));
    put(sys / "vdb/queue/iostats", "0");
    EXPECT_FALSE(cbt::counts_writes(dev, sys));
    fs::remove(sys / "vdb/queue/iostats");
    EXPECT_FALSE(cbt::counts_writes(dev, sys));
}

TEST_F(FakeSysfs, IdentityHasSerialAndSize) {
    EXPECT_EQ(cbt::device_identity(dev, sys), "serial=disk-42");
}

TEST_F(FakeSysfs, PartitionIdentityWithoutSerial) {
    fs::remove(sys / "vdb/serial");
    const std::string part = (tmp / "vdb1").string();
    put(part, "");
    fs::create_directory_symlink(sys / "vdb/vdb1", sys / "vdb1");
    EXPECT_EQ(cbt::device_identity(part, sys), "name=vdb partition=1");
}

TEST_F(FakeSysfs, MissingDeviceIsENODEV) {
    const std::string other = (tmp / "vdc").string();
    put(other, "");
    try {
        cbt::write_counters(other, sys);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENODEV);
    }
}

TEST(Persist, PathsUseTheDeviceName) {
    const auto p = cbt::persist_paths("/var/lib/blksnap", "/dev/mapper/vg-lv");
    EXPECT_EQ(p.state, "/var/lib/blksnap/mapper-vg-lv.cbt");
    EXPECT_EQ(p.record, "/var/lib/blksnap/mapper-vg-lv.saved");
    EXPECT_EQ(p.chain, "/var/lib/blksnap/mapper-vg-lv.chain");
}

struct Case {
    SaveRecord saved;
    CbtState state;
    Observed now;
};

Case restorable() {
    Case c;
    WriteCounters counters;
    counters.completed["vdb"] = {7, 56, 0, 0};
    c.saved = {"/dev/vdb", "serial=x", "boot-a", counters};
    c.state.block_size = 4096;
    c.state.device_capacity = 4096;
    c.state.map = {2};
    c.now.identity = "serial=x";
    c.now.boot_id = "boot-a";
    c.now.counters = counters;
    c.now.info.device_capacity = 4096;
    c.now.info.block_size = 4096;
    c.now.info.block_count = 1;
    return c;
}

TEST(Persist, SameBootUnchangedCountersRestore) {
    const Case c = restorable();
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now), std::nullopt);
}

TEST(Persist, SameBootWrittenAfterSave) {
    Case c = restorable();
    c.now.counters.completed["vdb"].writes++;
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the device was written after the save");
    c = restorable();
    c.now.counters.completed["vdb"].discards++;
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the device was written after the save");
    c = restorable();
    c.now.counters.in_flight = 1;
    EXPECT_TRUE(cbt::why_not_restorable(c.saved, c.state, c.now));
}

TEST(Persist, NewBootNeedsNoWriteSinceBoot) {
    Case c = restorable();
    c.now.boot_id = "boot-b";
    c.now.counters.completed["vdb"] = {0, 0, 0, 0};
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now), std::nullopt);
    c.now.counters.completed["vdb1"] = {1, 8, 0, 0};
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the device was written since boot, before the restore");
}

TEST(Persist, UncountedWritesNeverRestore) {
    Case c = restorable();
    c.now.counts_writes = false;
    EXPECT_NE(cbt::why_not_restorable(c.saved, c.state, c.now)->find("queue/iostats is 0"),
              std::string::npos);
}

TEST(Persist, OtherDeviceOrGeometry) {
    Case c = restorable();
    c.now.identity = "serial=y";
    EXPECT_NE(cbt::why_not_restorable(c.saved, c.state, c.now)->find("not the one saved"),
              std::string::npos);
    c = restorable();
    c.now.info.device_capacity = 8192;
    c.now.info.block_count = 2;
    EXPECT_NE(cbt::why_not_restorable(c.saved, c.state, c.now)->find("size"), std::string::npos);
}

} // namespace
} // namespace blksnap::test
