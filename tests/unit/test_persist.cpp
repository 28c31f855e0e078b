// cbt persistence: the block layer's counters, device identity, and when a
// saved change map may be loaded again.
#include "tmp_dir.hpp"

#include <blksnap/cbt/persist.hpp>
#include <blksnap/error.hpp>

#include <blksnap/unique_fd.hpp>

#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>

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

// No udev record (none runs): what sysfs tells.
const cbt::UdevLookup no_udev = [](DeviceId) { return cbt::UdevProperties{}; };

TEST_F(FakeSysfs, IdentityWithoutUdevIsTheSysfsSerial) {
    EXPECT_EQ(cbt::device_identity(dev, sys, no_udev), "serial=disk-42");
}

TEST_F(FakeSysfs, PartitionIdentityWithoutSerial) {
    fs::remove(sys / "vdb/serial");
    put(sys / "vdb/vdb1/start", "2048");
    const std::string part = (tmp / "vdb1").string();
    put(part, "");
    fs::create_directory_symlink(sys / "vdb/vdb1", sys / "vdb1");
    EXPECT_EQ(cbt::device_identity(part, sys, no_udev), "name=vdb partition=1 start=2048");
}

// udev's stable properties first, asked with the sysfs "dev" numbers: the
// disk's for the disk, the partition's for its entry UUID.
TEST_F(FakeSysfs, IdentityFromUdev) {
    put(sys / "vdb/dev", "252:16");
    put(sys / "vdb/vdb1/dev", "252:17");
    put(sys / "vdb/vdb1/start", "2048");
    const cbt::UdevLookup udev = [](DeviceId id) {
        if (id == DeviceId{252, 16})
            return cbt::UdevProperties{{"ID_SERIAL", "QEMU_HARDDISK_QM1"}, {"DEVTYPE", "disk"}};
        if (id == DeviceId{252, 17})
            return cbt::UdevProperties{{"ID_PART_ENTRY_UUID", "1234-01"}};
        return cbt::UdevProperties{};
    };
    EXPECT_EQ(cbt::device_identity(dev, sys, udev), "ID_SERIAL=QEMU_HARDDISK_QM1");
    const std::string part = (tmp / "vdb1").string();
    put(part, "");
    fs::create_directory_symlink(sys / "vdb/vdb1", sys / "vdb1");
    EXPECT_EQ(cbt::device_identity(part, sys, udev),
              "ID_SERIAL=QEMU_HARDDISK_QM1 partition=1 start=2048 ID_PART_ENTRY_UUID=1234-01");
    // A WWN before the serial.
    const cbt::UdevLookup wwn = [](DeviceId) {
        return cbt::UdevProperties{{"ID_SERIAL", "s"}, {"ID_WWN", "0x5000c500a1b2c3d4"}};
    };
    EXPECT_EQ(cbt::device_identity(dev, sys, wwn), "ID_WWN=0x5000c500a1b2c3d4");
}

// Without udev: a loop device's backing file (and its inode), a
// device-mapper device's UUID; never the kernel name when these exist.
TEST_F(FakeSysfs, IdentityOfLoopAndDeviceMapperWithoutUdev) {
    const fs::path backing = tmp / "image";
    put(backing, "x");
    put(sys / "loop3/stat", stat_line(0, 0));
    put(sys / "loop3/loop/backing_file", backing.string());
    put(sys / "loop3/loop/offset", "0");
    const std::string loop = (tmp / "loop3").string();
    put(loop, "");
    struct stat st;
    ASSERT_EQ(::stat(backing.c_str(), &st), 0);
    EXPECT_EQ(cbt::device_identity(loop, sys, no_udev), "loop/backing_file=" + backing.string() +
                                                            " inode=" + std::to_string(st.st_ino) +
                                                            " loop/offset=0");
    put(sys / "dm-2/stat", stat_line(0, 0));
    put(sys / "dm-2/dm/name", "vg-lv");
    put(sys / "dm-2/dm/uuid", "LVM-abc");
    const std::string dm = (tmp / "dm-2").string();
    put(dm, "");
    EXPECT_EQ(cbt::device_identity(dm, sys, no_udev), "dm/uuid=LVM-abc");
    put(sys / "dm-2/dm/uuid", "");
    EXPECT_EQ(cbt::device_identity(dm, sys, no_udev), "dm/name=vg-lv");
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
    c.saved = {"/dev/vdb", "serial=x", "boot-a", counters, "xxh64:64x4096+65536:0123"};
    c.state.block_size = 4096;
    c.state.device_capacity = 4096;
    c.state.map = {2};
    c.now.identity = "serial=x";
    c.now.boot_id = "boot-a";
    c.now.previous_boot = "boot-0";
    c.now.counters = counters;
    c.now.fingerprint = "xxh64:64x4096+65536:0123";
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
    c.now.previous_boot = "boot-a";
    c.now.counters.completed["vdb"] = {0, 0, 0, 0};
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now), std::nullopt);
    c.now.counters.completed["vdb1"] = {1, 8, 0, 0};
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the device was written since boot, before the restore");
}

// Only a save of the boot just before this one: a boot between went
// untracked (the module missing, a rescue system).
TEST(Persist, OnlyTheBootBeforeThisOne) {
    Case c = restorable();
    c.now.boot_id = "boot-c";
    c.now.previous_boot = "boot-b";
    c.now.counters.completed["vdb"] = {0, 0, 0, 0};
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the map was saved in boot boot-a, not in the boot before this one (boot-b): the "
              "device went a boot untracked");
    c.now.previous_boot = "";
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the map was saved in boot boot-a, and no record tells which boot came before "
              "this one");
}

TEST(Persist, ContentFingerprintMustMatch) {
    Case c = restorable();
    c.now.fingerprint = "xxh64:64x4096+65536:4567";
    EXPECT_NE(cbt::why_not_restorable(c.saved, c.state, c.now)->find("content is not what it was"),
              std::string::npos);
    c = restorable();
    c.saved.fingerprint = "";
    EXPECT_NE(cbt::why_not_restorable(c.saved, c.state, c.now)->find("no fingerprint"),
              std::string::npos);
    // Counters speak first: they say more.
    c = restorable();
    c.now.fingerprint = "other";
    c.now.counters.completed["vdb"].writes++;
    EXPECT_EQ(cbt::why_not_restorable(c.saved, c.state, c.now),
              "the device was written after the save");
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

// The boot record: the recorded boot becomes the previous one when another
// boot notes itself; noting twice in a boot changes nothing.
TEST(Persist, BootRecord) {
    TmpDir tmp;
    EXPECT_EQ(cbt::note_boot(tmp.path(), "a").previous, "");
    EXPECT_EQ(cbt::note_boot(tmp.path(), "a").previous, "");
    auto r = cbt::note_boot(tmp.path(), "b");
    EXPECT_EQ(r.boot_id, "b");
    EXPECT_EQ(r.previous, "a");
    EXPECT_EQ(cbt::note_boot(tmp.path(), "b").previous, "a");
    EXPECT_EQ(cbt::note_boot(tmp.path(), "c").previous, "b");
    // Damaged: which boot came before is unknown.
    put(tmp / "boots", "{");
    r = cbt::note_boot(tmp.path(), "d");
    EXPECT_EQ(r.previous, "");
    EXPECT_EQ(cbt::note_boot(tmp.path(), "e").previous, "d");
}

// The take moves the saved files into this boot's taken directory; there
// is nothing to take a second time.
TEST(Persist, TakeMovesTheSaveIntoThisBoot) {
    TmpDir tmp;
    const auto p = cbt::persist_paths(tmp.path(), "/dev/vdb");
    put(p.record, "{}");
    put(p.state, "map");
    EXPECT_TRUE(cbt::take_saved(tmp.path(), "/dev/vdb", "boot-b"));
    const auto t = cbt::taken_paths(tmp.path(), "/dev/vdb", "boot-b");
    EXPECT_EQ(t.record, tmp / "taken/boot-b/vdb.saved");
    EXPECT_TRUE(fs::exists(t.record));
    EXPECT_TRUE(fs::exists(t.state));
    EXPECT_FALSE(fs::exists(p.record));
    EXPECT_FALSE(fs::exists(p.state));
    EXPECT_FALSE(cbt::take_saved(tmp.path(), "/dev/vdb", "boot-b"));
    EXPECT_TRUE(fs::exists(t.record));
    EXPECT_EQ(cbt::note_boot(tmp.path(), "boot-b").boot_id, "boot-b");
    // A state file without its record (a save cut short) goes too.
    put(p.state, "map");
    EXPECT_FALSE(cbt::take_saved(tmp.path(), "/dev/vdb", "boot-c"));
    EXPECT_FALSE(fs::exists(p.state));
}

// The fingerprint reads the first 64 KiB and 64 blocks spread over the
// device: a change there changes it, a change elsewhere does not.
TEST(Persist, ContentFingerprint) {
    TmpDir tmp;
    const fs::path image = tmp / "image";
    const std::uint64_t size = 8 << 20;
    {
        std::ofstream out(image, std::ios::binary);
        for (std::uint64_t i = 0; i < size / 8; i++)
            out.write(reinterpret_cast<const char*>(&i), 8);
    }
    auto print = [&] {
        UniqueFd fd = open_fd(image.string(), O_RDONLY);
        return cbt::content_fingerprint(fd.get(), size, image.string());
    };
    auto poke = [&](std::uint64_t offset) {
        std::fstream f(image, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(offset));
        f.put('\x5a');
    };
    const std::string first = print();
    EXPECT_EQ(first.rfind("xxh64:64x4096+65536:", 0), 0u);
    EXPECT_EQ(print(), first);
    poke(1 << 20); // not sampled: 4 KiB at the middle of each 128 KiB slice
    const std::string second = print();
    EXPECT_EQ(second, first);
    poke(100); // a superblock
    const std::string third = print();
    EXPECT_NE(third, second);
    poke(size / 128 * 3 + 10); // the middle of the second slice
    EXPECT_NE(print(), third);
}

} // namespace
} // namespace blksnap::test
