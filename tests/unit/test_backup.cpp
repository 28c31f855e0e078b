// The backup engine (libblksnap's backup/): file names, the full/incremental decision, copy plans,
// the target image and the whole job against the fake kernel, with regular
// files standing in for the snapshot images.
#include "fake_kernel.hpp"
#include "tmp_dir.hpp"

#include <blksnap/backup/batch_io.hpp>
#include <blksnap/backup/checksum.hpp>
#include <blksnap/backup/job.hpp>
#include <blksnap/backup/plan.hpp>
#include <blksnap/backup/points.hpp>
#include <blksnap/backup/previous.hpp>
#include <blksnap/backup/program.hpp>
#include <blksnap/backup/readback.hpp>
#include <blksnap/backup/restore.hpp>
#include <blksnap/backup/target.hpp>
#include <blksnap/cbt/state_file.hpp>
#include <blksnap/error.hpp>
#include <blksnap/unique_fd.hpp>

#include <cerrno>
#include <fcntl.h>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <sys/stat.h>
#include <xxhash.h>

namespace blksnap::test {
namespace {

using backup::ByteRange;
using backup::CopyStep;
using backup::PreviousBackup;

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

void write_file(const std::filesystem::path& p, const std::string& data) {
    std::ofstream(p, std::ios::binary).write(data.data(), std::streamsize(data.size()));
}

// ---------------------------------------------------------------- names

TEST(DeviceFileName, IsThePathUnderDev) {
    EXPECT_EQ(cbt::device_file_name("/dev/vdb1"), "vdb1");
    EXPECT_EQ(cbt::device_file_name("/dev/mapper/vg-root"), "mapper-vg-root");
    EXPECT_EQ(cbt::device_file_name("/dev/disk/by-id/virtio-x"), "disk-by-id-virtio-x");
    EXPECT_EQ(cbt::device_file_name("/dev//vdb/"), "vdb");
    EXPECT_EQ(cbt::device_file_name("/var/tmp/disk.img"), "disk.img");
    EXPECT_EQ(cbt::device_file_name("vdc"), "vdc");
}

TEST(DeviceFileName, RefusesPathsWithoutAName) {
    for (const char* bad : {"/dev/", "/dev/..", "/dev/.hidden", "", "/"}) {
        try {
            cbt::device_file_name(bad);
            ADD_FAILURE() << "accepted '" << bad << "'";
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), EINVAL);
        }
    }
}

// ---------------------------------------------------------------- decision

constexpr std::uint32_t bs = 65536;
const Uuid gen_a = Uuid::parse("6a000000-0000-4000-8000-000000000001");
const Uuid gen_b = Uuid::parse("6b000000-0000-4000-8000-000000000002");

CbtInfo info_of(std::uint64_t capacity, Uuid gen, std::uint8_t changes) {
    return {capacity, bs, static_cast<std::uint32_t>((capacity + bs - 1) / bs), gen, changes};
}

struct DecideTest : ::testing::Test {
    CbtInfo info = info_of(16 * bs, gen_a, 5);
    std::vector<std::uint8_t> map = std::vector<std::uint8_t>(16, 0);
    PreviousBackup prev;

    void SetUp() override {
        // The last backup was take 3; blocks 2, 3 and 9 changed after it.
        map[1] = 3;
        map[2] = 4;
        map[3] = 5;
        map[9] = 4;
        prev.state = PreviousBackup::State::valid;
        prev.cbt = cbt::CbtState::of(info_of(16 * bs, gen_a, 3), std::vector<std::uint8_t>(16));
        prev.image = true;
        prev.image_size = 16 * bs;
        prev.image_file = {0x801, 12, 16 * bs, 1700000000, 5, 1700000001, 7};
        prev.cbt.image = cbt::ImageBinding{prev.image_file, std::vector<std::uint64_t>(16)};
    }
    backup::Decision decide() { return backup::decide(prev, info, map, 16 * bs); }
    void expect_full(const std::string& reason) {
        const auto d = decide();
        EXPECT_FALSE(d.incremental);
        EXPECT_NE(d.reason.find(reason), std::string::npos) << d.reason;
        EXPECT_TRUE(d.extents.empty());
    }
};

TEST_F(DecideTest, SameGenerationIsIncrementalFromTheRecordedTake) {
    const auto d = decide();
    EXPECT_TRUE(d.incremental);
    EXPECT_EQ(d.reason, "changes since take 3 of generation " + gen_a.str());
    const std::vector<cbt::Extent> want{{2 * 128, 2 * 128}, {9 * 128, 128}};
    EXPECT_EQ(d.extents, want);
}

TEST_F(DecideTest, NothingChangedIsAnEmptyIncremental) {
    prev.cbt.position.changes_number = 5;
    const auto d = decide();
    EXPECT_TRUE(d.incremental);
    EXPECT_TRUE(d.extents.empty());
}

TEST_F(DecideTest, NoStateIsFull) {
    prev.state = PreviousBackup::State::missing;
    expect_full("no state file beside the image");
    prev.image = false;
    expect_full("first backup: no state file");
}

TEST_F(DecideTest, DamagedStateIsFullAndSaysWhy) {
    prev.state = PreviousBackup::State::damaged;
    prev.problem = "/b/vdb.state: checksum mismatch";
    expect_full("state file unusable: /b/vdb.state: checksum mismatch");
}

TEST_F(DecideTest, GenerationChangeIsFull) {
    info.generation_id = gen_b;
    expect_full("generation changed from " + gen_a.str() + " to " + gen_b.str());
}

TEST_F(DecideTest, ChangesNumberAheadIsFull) {
    prev.cbt.position.changes_number = 6;
    expect_full("changes number 6 is ahead of the tracker's 5");
}

TEST_F(DecideTest, DeviceSizeChangeIsFull) {
    info = info_of(32 * bs, gen_a, 5);
    map.assign(32, 0);
    const auto d = backup::decide(prev, info, map, 32 * bs);
    EXPECT_FALSE(d.incremental);
    EXPECT_EQ(d.reason, "device size changed from " + std::to_string(16 * bs) + " bytes to " +
                            std::to_string(32 * bs) + " bytes");
}

TEST_F(DecideTest, BlockSizeChangeIsFull) {
    prev.cbt.block_size = bs / 2;
    expect_full("tracking blocks changed");
}

TEST_F(DecideTest, MissingOrWrongSizedImageIsFull) {
    prev.image_size = 16 * bs - 512;
    expect_full("image file is " + std::to_string(16 * bs - 512) + " bytes, the device " +
                std::to_string(16 * bs) + " bytes");
    prev.image = false;
    expect_full("image file missing");
}

TEST_F(DecideTest, AStateWithoutImageBindingIsFull) {
    prev.cbt.image.reset();
    expect_full("the state file has no image binding (written by an older blksnap)");
}

TEST_F(DecideTest, AnImageChangedSinceIsFull) {
    prev.image_file.ctime_nsec = 8;
    expect_full("the image file changed since the last backup (written, or another copied over "
                "it): ctime 1700000001.000000008, was 1700000001.000000007");
    prev.image_file.mtime_sec = 1600000000; // copied back with its old mtime: ctime tells
    expect_full("ctime 1700000001.000000008, was 1700000001.000000007; mtime "
                "1600000000.000000005, was 1700000000.000000005");
    prev.image_file = prev.cbt.image->file;
    prev.image_file.inode = 13;
    expect_full("the image file is not the one the state file was written for: device 8:1 "
                "inode 13, was device 8:1 inode 12");
    prev.image_file = prev.cbt.image->file;
    prev.image_file.device = 0x802;
    expect_full("device 8:2 inode 12, was device 8:1 inode 12");
    prev.image_file = prev.cbt.image->file;
    EXPECT_TRUE(decide().incremental);
}

TEST_F(DecideTest, AnIncompleteStateIsFull) {
    prev.cbt.incomplete = true;
    expect_full("the last backup did not finish writing the image (the state file says "
                "incomplete)");
}

// ---------------------------------------------------------------- plans

TEST(SampleBlocks, OnlyBlocksNotRewrittenSpreadOverThem) {
    // 100 blocks of 4096 bytes; the plan writes blocks 10-19 and part of 50.
    std::vector<CopyStep> plan{{{40960, 40960}, {{40960, 40960}}},
                               {{50 * 4096 + 100, 10}, {{50 * 4096 + 100, 10}}}};
    auto all = backup::sample_blocks(plan, 100, 4096, 1000, 0.5);
    ASSERT_EQ(all.size(), 89u);
    for (const auto b : all)
        EXPECT_TRUE(b < 10 || (b >= 20 && b != 50)) << b;
    EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
    // 8 of the 89: one in each stretch of 89/8 ranks, at the phase.
    auto some = backup::sample_blocks(plan, 100, 4096, 8, 0.0);
    ASSERT_EQ(some.size(), 8u);
    EXPECT_EQ(some.front(), 0u);
    for (std::size_t i = 0; i < some.size(); ++i) {
        const auto rank =
            static_cast<std::size_t>(std::find(all.begin(), all.end(), some[i]) - all.begin());
        EXPECT_EQ(rank, static_cast<std::size_t>(double(i) * 89 / 8)) << i;
    }
    auto late = backup::sample_blocks(plan, 100, 4096, 8, 0.999);
    ASSERT_EQ(late.size(), 8u);
    EXPECT_EQ(late.back(), all.back()); // the last stretch's last rank
    EXPECT_NE(late, some);
    EXPECT_TRUE(backup::sample_blocks(plan, 100, 4096, 0, 0.5).empty());
    EXPECT_TRUE(backup::sample_blocks(backup::full_plan(100 * 4096), 100, 4096, 8, 0.5).empty());
    EXPECT_EQ(backup::sample_blocks({}, 3, 4096, 8, 0.5), (std::vector<std::uint64_t>{0, 1, 2}));
}

TEST(SampleBlocks, DefaultCountIs64BlocksAndAtMost64MiB) {
    EXPECT_EQ(backup::default_check_blocks(65536), 64u);
    EXPECT_EQ(backup::default_check_blocks(1u << 20), 64u);
    EXPECT_EQ(backup::default_check_blocks(4u << 20), 16u);
    EXPECT_EQ(backup::default_check_blocks(1u << 30), 1u);
}

TEST(CopyPlan, NearExtentsShareAReadButOnlyChangesAreWritten) {
    // Sectors: [0,8) [16,24) close together; [10000,10008) far; the last
    // extent runs past the end.
    const std::vector<cbt::Extent> ext{{0, 8}, {16, 8}, {10000, 8}, {20000, 100}};
    const auto plan = backup::copy_plan(ext, 20000 * 512 + 4096, 8192);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 24 * 512}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 4096}, {8192, 4096}}));
    EXPECT_EQ(plan[1].read, (ByteRange{10000 * 512, 4096}));
    EXPECT_EQ(plan[2].read, (ByteRange{20000 * 512, 4096}));
    EXPECT_EQ(plan[2].write, (std::vector<ByteRange>{{20000 * 512, 4096}}));
    EXPECT_EQ(backup::bytes_to_read(plan), 24 * 512 + 4096 + 4096);
    EXPECT_EQ(backup::bytes_to_write(plan), 4 * 4096);
}

TEST(CopyPlan, AdjacentExtentsMergeAndNoGapMeansSeparateReads) {
    const std::vector<cbt::Extent> ext{{0, 8}, {8, 8}, {24, 8}};
    const auto plan = backup::copy_plan(ext, 1 << 20, 0);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 8192}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 8192}}));
    EXPECT_EQ(plan[1].read, (ByteRange{24 * 512, 4096}));
}

TEST(CopyPlan, ExtentsPastTheEndAreDropped) {
    const std::vector<cbt::Extent> ext{{100, 8}};
    EXPECT_TRUE(backup::copy_plan(ext, 100 * 512, 0).empty());
    EXPECT_TRUE(backup::copy_plan({}, 100 * 512, 0).empty());
}

TEST(CopyPlan, FullPlanIsOneReadOfEverything) {
    const auto plan = backup::full_plan(1 << 20);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 1 << 20}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 1 << 20}}));
    EXPECT_TRUE(backup::full_plan(0).empty());
}

// ---------------------------------------------------------------- target

std::span<const std::byte> bytes_of(const std::string& s) {
    return std::as_bytes(std::span(s.data(), s.size()));
}

std::uint64_t allocated(const std::filesystem::path& p) {
    struct stat st;
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return std::uint64_t(st.st_blocks) * 512;
}

bool present(const std::filesystem::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0;
}

std::uint64_t inode_of(const std::filesystem::path& p) {
    struct stat st;
    EXPECT_EQ(::stat(p.c_str(), &st), 0);
    return st.st_ino;
}

TEST(TargetImage, NewImageIsWrittenAsPartialSizedAndSparseWhereZero) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'x')); // an old image is removed
    ::chmod(path.c_str(), 0640);
    write_file(dir / "vdb.img.partial", "left by a killed backup");
    auto img = backup::TargetImage::create(path, 1 << 20);
    EXPECT_FALSE(present(path));
    EXPECT_EQ(img.path(), dir / "vdb.img.partial");
    EXPECT_EQ(img.how(), backup::WritePath::fresh);
    std::string data(256 << 10, '\0');
    data.replace(8192, 5, "hello"); // one 4 KiB granule of data
    data.replace(200 << 10, 4096, std::string(4096, 'y'));
    img.write(64 << 10, bytes_of(data));
    img.sync();
    EXPECT_FALSE(present(path));
    img.commit();
    EXPECT_FALSE(present(dir / "vdb.img.partial"));
    EXPECT_EQ(img.bytes_written(), 2 * 4096u);
    std::string want(1 << 20, '\0');
    want.replace(64 << 10, data.size(), data);
    EXPECT_EQ(read_file(path), want);
    EXPECT_LE(allocated(path), 64u << 10); // holes, give or take the file system's blocks
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u); // the old image's mode
    EXPECT_EQ(img.status().st_ino, st.st_ino);
}

TEST(TargetImage, InPlaceUpdateMarksFirstRenamesToPartialAndBack) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'o'));
    const auto ino = inode_of(path);
    int marks = 0;
    auto img = backup::TargetImage::update(
        path,
        [&] {
            ++marks;
            EXPECT_TRUE(present(path)) << "renamed before the state was marked";
        },
        false);
    EXPECT_EQ(img.how(), backup::WritePath::none);
    std::string data(64 << 10, 'n');
    std::fill_n(data.begin() + 4096, 16384, '\0');
    img.write(4096 + 512, bytes_of(data)); // not aligned: partial granules at both ends
    img.write(512 << 10, bytes_of(std::string(4096, 'm')));
    EXPECT_EQ(marks, 1);
    EXPECT_EQ(img.how(), backup::WritePath::in_place);
    EXPECT_FALSE(present(path)) << "a torn image under the image's name";
    EXPECT_EQ(img.path(), dir / "vdb.img.partial");
    img.sync();
    img.commit();
    EXPECT_FALSE(present(dir / "vdb.img.partial"));
    std::string want(1 << 20, 'o');
    want.replace(4096 + 512, data.size(), data);
    want.replace(512 << 10, 4096, std::string(4096, 'm'));
    EXPECT_EQ(read_file(path), want);
    EXPECT_EQ(inode_of(path), ino);
    // The zeros lie at 8704..24576 of the file: the whole 4 KiB pieces
    // among them, 12288..24576, are punched; the rest is written.
    EXPECT_EQ(img.bytes_written(), data.size() - 12288 + 4096);
}

TEST(TargetImage, AFailedInPlaceUpdateLeavesOnlyThePartialImage) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'o'));
    {
        auto img = backup::TargetImage::update(
            path, [] {}, false);
        img.write(0, bytes_of(std::string(4096, 'n')));
    } // never committed
    EXPECT_FALSE(present(path));
    EXPECT_EQ(read_file(dir / "vdb.img.partial").substr(0, 4097), std::string(4096, 'n') + 'o');
}

TEST(TargetImage, AnUpdateThatWritesNothingLeavesTheImage) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, "image");
    struct stat before;
    ASSERT_EQ(::stat(path.c_str(), &before), 0);
    auto img = backup::TargetImage::update(path, [] { ADD_FAILURE() << "marked"; });
    img.write(0, {});
    img.sync();
    img.commit();
    EXPECT_EQ(img.how(), backup::WritePath::none);
    EXPECT_EQ(cbt::FileIdentity::of(img.status()), cbt::FileIdentity::of(before));
}

// A reflink copy where the file system can clone (XFS, btrfs), else in
// place: either way the image's name never holds a torn image.
TEST(TargetImage, UpdateClonesWhereItCanElseWritesInPlace) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'o'));
    ::chmod(path.c_str(), 0604);
    const auto ino = inode_of(path);
    for (const bool commit : {false, true}) {
        bool marked = false;
        {
            auto img = backup::TargetImage::update(path, [&] { marked = true; });
            img.write(8192, bytes_of(std::string(4096, commit ? 'c' : 'n')));
            if (img.how() == backup::WritePath::reflink) {
                EXPECT_FALSE(marked);
                EXPECT_EQ(read_file(path), std::string(1 << 20, 'o')) << "the image changed";
                EXPECT_EQ(img.path().string().rfind(path.string() + ".new-", 0), 0u);
                struct stat st;
                ASSERT_EQ(::stat(img.path().c_str(), &st), 0);
                EXPECT_EQ(st.st_mode & 07777, 0604u);
            } else {
                EXPECT_EQ(img.how(), backup::WritePath::in_place);
                EXPECT_TRUE(marked);
                EXPECT_FALSE(present(path));
                GTEST_SKIP() << "no reflink on " << dir.path()
                             << ": the in-place path only (tests/guest/backup_image.sh runs both)";
            }
            img.sync();
            if (commit) {
                img.commit();
                EXPECT_NE(inode_of(path), ino);
            }
        }
        // An uncommitted copy is removed; the image is the old one.
        EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
        std::string want(1 << 20, 'o');
        if (commit)
            want.replace(8192, 4096, std::string(4096, 'c'));
        EXPECT_EQ(read_file(path), want);
    }
}

TEST(TargetImage, LeftoverCopiesAreRemoved) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, "image");
    write_file(dir / "vdb.img.new-a1B2c3", "copy");
    write_file(dir / "vdb.img.new-abc", "not ours");
    write_file(dir / "vdb.img.partial", "not a copy");
    write_file(dir / "vdc.img.new-a1B2c3", "another device's");
    std::filesystem::create_directory(dir / "vdb.img.new-zzzzzz");
    EXPECT_EQ(backup::remove_leftover_copies(path), std::vector<std::string>{"vdb.img.new-a1B2c3"});
    EXPECT_FALSE(present(dir / "vdb.img.new-a1B2c3"));
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 5);
    EXPECT_TRUE(backup::remove_leftover_copies(path).empty());
}

TEST(BlockSums, KeepsTheSumsOfWholeBlocksWrittenAndRereadsPartOnes) {
    TmpDir dir;
    const auto file = dir / "vdb.img";
    std::string content(10 * 4096 + 1000, '\0');
    std::mt19937 rng(3);
    for (auto& c : content)
        c = static_cast<char>(rng());
    write_file(file, content);
    auto sum = [&](std::size_t b) {
        const std::size_t len = std::min<std::size_t>(4096, content.size() - b * 4096);
        return XXH64(content.data() + b * 4096, len, 0);
    };
    std::vector<std::uint64_t> old(11, 7);
    backup::BlockSums sums(old, 4096, content.size());
    auto feed = [&](std::size_t from, std::size_t to) {
        sums.written(from, bytes_of(content.substr(from, to - from)));
    };
    feed(0, 3000); // block 0 in two pieces
    feed(3000, 4096 + 100);
    feed(4096 + 100, 2 * 4096);      // block 1 whole
    feed(5 * 4096 + 10, 6 * 4096);   // block 5 from its middle: reread
    feed(7 * 4096, 7 * 4096 + 50);   // block 7 in part: reread
    feed(10 * 4096, content.size()); // the short last block
    const auto got = sums.finish(file);
    EXPECT_EQ(got, (std::vector<std::uint64_t>{sum(0), sum(1), 7, 7, 7, sum(5), 7, sum(7), 7, 7,
                                               sum(10)}));
    EXPECT_EQ(backup::block_sums(file, 4096, std::vector<std::uint64_t>{10, 2}),
              (std::vector<std::uint64_t>{sum(10), sum(2)}));
}

TEST(BlockSums, ReadsManyBlocksInBatchesInAnyOrder) {
    TmpDir dir;
    const auto file = dir / "vdc.img";
    constexpr std::size_t bs = 1u << 20; // four to a batch
    std::string content(9 * bs + 3000, '\0');
    std::mt19937 rng(5);
    for (auto& c : content)
        c = static_cast<char>(rng());
    write_file(file, content);
    auto sum = [&](std::uint64_t b) {
        const std::size_t at = std::min<std::size_t>(b * bs, content.size());
        return XXH64(content.data() + at, std::min(bs, content.size() - at), 0);
    };
    // The short last block (9) and one past the end (11) among the others.
    const std::vector<std::uint64_t> blocks{8, 0, 9, 3, 1, 11, 2, 7, 6, 5, 4};
    std::vector<std::uint64_t> want;
    for (auto b : blocks)
        want.push_back(sum(b));
    EXPECT_EQ(backup::block_sums(file, bs, blocks), want);
}

TEST(BatchIo, MovesScatteredPiecesWholeAndTellsWhereAReadEnds) {
    TmpDir dir;
    const auto file = (dir / "scattered").string();
    UniqueFd fd = open_fd(file, O_RDWR | O_CREAT, 0600);
    // 200 pieces (more than are in flight at once), each of its own byte.
    std::vector<std::string> data;
    std::vector<backup::IoPiece> pieces;
    for (int i = 0; i < 200; ++i)
        data.emplace_back(1000 + i, static_cast<char>(i));
    for (int i = 0; i < 200; ++i)
        pieces.push_back({static_cast<std::uint64_t>((199 - i) * 5000),
                          std::as_writable_bytes(std::span(data[i]))});
    backup::transfer_all(fd.get(), backup::IoDirection::write, pieces, file);
    const std::string all = read_file(file);
    for (int i = 0; i < 200; ++i)
        EXPECT_EQ(all.substr((199 - i) * 5000, data[i].size()), data[i]) << "piece " << i;
    std::vector<std::string> back;
    for (const auto& d : data)
        back.emplace_back(d.size(), 'x');
    for (int i = 0; i < 200; ++i)
        pieces[i].data = std::as_writable_bytes(std::span(back[i]));
    backup::transfer_all(fd.get(), backup::IoDirection::read, pieces, file);
    EXPECT_EQ(back, data);
    // A piece past the end of the file.
    std::string beyond(100, 'y');
    pieces.push_back({all.size() - 10, std::as_writable_bytes(std::span(beyond))});
    try {
        backup::transfer_all(fd.get(), backup::IoDirection::read, pieces, file);
        ADD_FAILURE() << "a read past the end passed";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EIO);
        EXPECT_NE(std::string(e.what()).find("at offset " + std::to_string(all.size())),
                  std::string::npos)
            << e.what();
    }
}

TEST(TargetImage, FirstDifferenceReadsBothBack) {
    TmpDir dir;
    const auto a = dir / "vdb.img";
    const auto b = (dir / "vdb.src").string();
    std::string content(3 << 20, '\0');
    std::mt19937 rng(7);
    for (auto& c : content)
        c = static_cast<char>(rng());
    write_file(a, content);
    write_file(b, content);
    const std::vector<ByteRange> ranges{{512, 4096}, {700000, 100000}, {0, 3 << 20}};
    EXPECT_EQ(backup::first_difference(a, b, ranges), std::nullopt);
    content[2500000] ^= 1;
    write_file(b, content);
    EXPECT_EQ(backup::first_difference(a, b, std::vector<ByteRange>{{512, 4096}}), std::nullopt);
    EXPECT_EQ(backup::first_difference(a, b, ranges), 2500000u);
    // A shorter file differs where it ends.
    write_file(b, content.substr(0, 1 << 20));
    EXPECT_EQ(backup::first_difference(a, b, std::vector<ByteRange>{{0, 3 << 20}}), 1u << 20);
    // The image is never read through a link.
    std::filesystem::create_symlink(a, dir / "link.img");
    EXPECT_THROW(backup::first_difference(dir / "link.img", b, ranges), Error);
    backup::Xxh64 h;
    h.update(bytes_of(content.substr(0, 5)));
    h.update(bytes_of(content.substr(5, 100)));
    EXPECT_EQ(h.digest(), XXH64(content.data(), 105, 0));
}

TEST(StateWrite, ReplacesAtomicallyAndAFailedWriteKeepsTheOldState) {
    TmpDir dir;
    const auto path = dir / "vdb.state";
    auto st = cbt::CbtState::of(info_of(16 * bs, gen_a, 3), std::vector<std::uint8_t>(16, 2));
    cbt::write_state_file(path, st);
    st.position.changes_number = 4;
    cbt::write_state_file(path, st);
    EXPECT_EQ(cbt::read_state_file(path).position.changes_number, 4);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
    // A write that cannot complete (the rename meets a directory) leaves the
    // old state and no temporary file.
    const auto blocked = dir / "vdc.state";
    std::filesystem::create_directory(blocked);
    std::filesystem::create_directory(blocked / "x");
    EXPECT_THROW(cbt::write_state_file(blocked, st), Error);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 2);
    EXPECT_EQ(cbt::read_state_file(path).position.changes_number, 4);
}

TEST(StateWrite, RemoveDurablyToleratesAMissingFile) {
    TmpDir dir;
    write_file(dir / "a", "x");
    backup::remove_durably(dir / "a");
    backup::remove_durably(dir / "a");
    EXPECT_FALSE(std::filesystem::exists(dir / "a"));
}

TEST(LoadPrevious, TellsMissingDamagedAndValid) {
    TmpDir dir;
    auto p = backup::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::missing);
    EXPECT_FALSE(p.image);
    write_file(dir / "vdb.img", std::string(4096, 'a'));
    write_file(dir / "vdb.state", "garbage");
    p = backup::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::damaged);
    EXPECT_NE(p.problem.find("vdb.state: truncated"), std::string::npos) << p.problem;
    EXPECT_TRUE(p.image);
    EXPECT_EQ(p.image_size, 4096u);
    const auto st = cbt::CbtState::of(info_of(16 * bs, gen_a, 3), std::vector<std::uint8_t>(16));
    cbt::write_state_file(dir / "vdb.state", st);
    p = backup::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::valid);
    EXPECT_EQ(p.cbt.position, st.position);
}

TEST(LoadPrevious, UnreadableOrLinkedIsAnErrorNotDamage) {
    TmpDir dir;
    write_file(dir / "vdb.img", std::string(4096, 'a'));
    // Cannot be read (here: a directory, EISDIR): an error, no full backup.
    std::filesystem::create_directory(dir / "vdb.state");
    try {
        backup::load_previous(dir / "vdb.img", dir / "vdb.state");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EISDIR) << e.what();
        EXPECT_NE(std::string(e.what()).find("Is a directory"), std::string::npos) << e.what();
    }
    std::filesystem::remove(dir / "vdb.state");
    // A symbolic link, to a good state or as the image: refused.
    const auto st = cbt::CbtState::of(info_of(16 * bs, gen_a, 3), std::vector<std::uint8_t>(16));
    cbt::write_state_file(dir / "good.state", st);
    std::filesystem::create_symlink(dir / "good.state", dir / "vdb.state");
    for (const auto& [image, state] :
         {std::pair{dir / "vdb.img", dir / "vdb.state"}, std::pair{dir / "link.img", dir / "no"}}) {
        if (image == dir / "link.img")
            std::filesystem::create_symlink(dir / "vdb.img", image);
        try {
            backup::load_previous(image, state);
            FAIL() << "no error for " << image << " " << state;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ELOOP) << e.what();
        }
    }
}

// ---------------------------------------------------------------- the job

// Two devices of 64 blocks whose snapshot images are files in the
// directory; a write changes both the "image" and the fake tracker.
class BackupJob : public ::testing::Test {
protected:
    FakeKernel kernel;
    TmpDir dir;
    std::filesystem::path out = dir / "backup";
    std::map<std::string, std::string> content;
    std::vector<backup::DeviceReport> reports;
    std::vector<std::string> notes;
    std::function<void(const backup::DeviceReport&)> on_progress;
    backup::Verify verify = backup::Verify::written;
    bool reflink = true; // on the ext4 or tmpfs of /var/tmp: in place
    std::optional<std::uint64_t> check_blocks;
    std::function<bool()> interrupted;
    std::optional<backup::PointFormat> format;
    std::uint64_t keep = 0;
    static constexpr std::uint64_t size = 64 * bs;

    void SetUp() override {
        for (const char* dev : {"/dev/vdb", "/dev/vdc"}) {
            kernel.add_device(dev, size, bs);
            std::string data(size, '\0');
            for (std::size_t b = 0; b < 64; b += 3) // every third block has data
                std::fill_n(data.begin() + b * bs, 1000, char('A' + b % 26));
            content[dev] = data;
        }
    }
    std::string image_of(const std::string& dev) {
        return (dir / (dev.substr(5) + ".src")).string();
    }
    // Writes of the devices go to their "images" before a take: the files
    // are what the snapshot shows.
    void write(const std::string& dev, std::uint32_t block, char c) {
        std::fill_n(content[dev].begin() + block * bs + 100, 5000, c);
        kernel.write_block(dev, block);
    }
    void backup(std::vector<std::string> devs = {"/dev/vdb", "/dev/vdc"}) {
        for (const auto& [dev, data] : content)
            write_file(image_of(dev), data);
        backup::BackupOptions o;
        o.devices = devs;
        o.dir = out;
        o.storage = dir.path();
        o.limit = 1 << 20;
        o.verify = verify;
        o.max_gap = 0;
        o.reflink = reflink;
        o.check_blocks = check_blocks;
        o.format = format;
        o.keep = keep;
        backup::BackupHooks h;
        h.interrupted = interrupted;
        h.image_path = [&](const std::string& dev, const SnapshotInfo& si) {
            EXPECT_FALSE(si.image.empty());
            return image_of(dev);
        };
        h.note = [&](const std::string& m) { notes.push_back(m); };
        h.progress = [&](const backup::DeviceReport& r) {
            if (on_progress)
                on_progress(r);
        };
        h.done = [&](const backup::DeviceReport& r) { reports.push_back(r); };
        reports.clear();
        backup::run_backup(kernel, o, h);
    }
    void expect_images_equal() {
        for (const auto& [dev, data] : content)
            EXPECT_EQ(read_file(out / (dev.substr(5) + ".img")), data) << dev;
    }
};

TEST_F(BackupJob, FullThenIncrementalOfOnlyTheChangedBlocks) {
    backup();
    ASSERT_EQ(reports.size(), 2u);
    for (const auto& r : reports) {
        EXPECT_FALSE(r.incremental);
        EXPECT_EQ(r.reason, "first backup: no state file");
        EXPECT_EQ(r.bytes_read, size);
        EXPECT_EQ(r.bytes_written, 22 * 4096u); // 22 blocks with 1000 bytes of data each
        EXPECT_TRUE(r.verified);
        EXPECT_EQ(r.changes_number, 1);
    }
    expect_images_equal();
    EXPECT_TRUE(kernel.snapshots.empty());
    EXPECT_FALSE(std::filesystem::exists(out / backup::snapshot_id_file));

    write("/dev/vdb", 5, 'x');
    write("/dev/vdb", 6, 'y');
    write("/dev/vdb", 40, 'z');
    backup();
    ASSERT_EQ(reports.size(), 2u);
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].reason, "changes since take 1 of generation " +
                                     kernel.devices["/dev/vdb"].info.generation_id.str());
    EXPECT_EQ(reports[0].bytes_read, 3 * bs);
    EXPECT_TRUE(reports[1].incremental);
    EXPECT_EQ(reports[1].bytes_read, 0u);
    expect_images_equal();
    EXPECT_EQ(cbt::read_state_file(out / "vdb.state").position.changes_number, 2);

    // Zeroed data in a changed block is punched, and the image stays exact.
    std::fill_n(content["/dev/vdb"].begin(), bs, '\0');
    kernel.write_block("/dev/vdb", 0);
    backup({"/dev/vdb"});
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].bytes_read, bs);
    expect_images_equal();
}

TEST_F(BackupJob, ABrokenChainIsAFullBackupThatSaysWhy) {
    backup();
    // A new generation.
    kernel.devices["/dev/vdb"].info.generation_id =
        Uuid::parse("99999999-0000-4000-8000-000000000009");
    // A damaged state file.
    std::string st = read_file(out / "vdc.state");
    st[60] ^= 1;
    write_file(out / "vdc.state", st);
    backup();
    EXPECT_FALSE(reports[0].incremental);
    EXPECT_NE(reports[0].reason.find("generation changed"), std::string::npos) << reports[0].reason;
    EXPECT_FALSE(reports[1].incremental);
    EXPECT_NE(reports[1].reason.find("checksum mismatch"), std::string::npos) << reports[1].reason;
    expect_images_equal();
    // A deleted image.
    std::filesystem::remove(out / "vdb.img");
    backup({"/dev/vdb"});
    EXPECT_EQ(reports[0].reason, "image file missing");
    expect_images_equal();
}

// The state and image of a device as files: what a failure must not mix.
struct Files {
    std::string state, image;
    bool partial = false;
    bool operator==(const Files&) const = default;
};

TEST_F(BackupJob, CorruptionDuringAnInPlaceCopyLeavesAPartialImageAndAFullBackupNext) {
    reflink = false;
    backup();
    write("/dev/vdb", 7, 'q');
    on_progress = [&](const backup::DeviceReport& r) {
        if (r.device != "/dev/vdb")
            return;
        // The first write came: the state says incomplete first, the image
        // is renamed while it is torn.
        EXPECT_EQ(r.write_path, backup::WritePath::in_place);
        EXPECT_TRUE(cbt::read_state_file(out / "vdb.state").incomplete);
        EXPECT_FALSE(present(out / "vdb.img"));
        EXPECT_TRUE(present(out / "vdb.img.partial"));
        kernel.devices["/dev/vdb"].error_code = -ENOSPC;
    };
    try {
        backup();
        ADD_FAILURE() << "the backup of a corrupted snapshot succeeded";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOSPC);
        const std::string what = e.what();
        EXPECT_NE(what.find("backup /dev/vdb: the snapshot was corrupted during the backup"),
                  std::string::npos)
            << what;
        EXPECT_NE(what.find("limit of 1048576 bytes"), std::string::npos) << what;
        EXPECT_NE(what.find("the image is left as vdb.img.partial, incomplete, and the state file "
                            "says so: the next backup is full"),
                  std::string::npos)
            << what;
    }
    EXPECT_FALSE(present(out / "vdb.img")) << "a torn image under the image's name";
    EXPECT_TRUE(cbt::read_state_file(out / "vdb.state").incomplete);
    EXPECT_TRUE(kernel.snapshots.empty()) << "the snapshot outlived the failure";
    EXPECT_TRUE(reports.empty());
    // The next run is full, says why, and leaves no partial image.
    on_progress = nullptr;
    kernel.devices["/dev/vdb"].error_code = 0;
    backup();
    EXPECT_FALSE(reports[0].incremental);
    EXPECT_EQ(reports[0].reason,
              "the last backup did not finish writing the image (the state file says incomplete)");
    EXPECT_EQ(reports[0].write_path, backup::WritePath::fresh);
    EXPECT_TRUE(reports[1].incremental);
    EXPECT_EQ(reports[1].write_path, backup::WritePath::none);
    EXPECT_FALSE(present(out / "vdb.img.partial"));
    EXPECT_FALSE(cbt::read_state_file(out / "vdb.state").incomplete);
    expect_images_equal();
}

// A failure before the first write changes nothing; neither does a
// corruption found before it.
TEST_F(BackupJob, AFailureBeforeTheFirstWriteKeepsImageAndState) {
    backup();
    const auto files = [&] {
        return Files{read_file(out / "vdb.state"), read_file(out / "vdb.img"),
                     present(out / "vdb.img.partial")};
    };
    const Files before = files();
    write("/dev/vdb", 7, 'q');
    interrupted = [] { return true; };
    try {
        backup({"/dev/vdb"});
        ADD_FAILURE() << "not interrupted";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EINTR);
        EXPECT_EQ(std::string(e.what()), "backup /dev/vdb: interrupted (Interrupted system call)");
    }
    EXPECT_TRUE(files() == before);
    // The snapshot overflows before the first write: a read fails (here:
    // the job is stopped) and the corruption is told.
    interrupted = [&] {
        kernel.devices["/dev/vdb"].error_code = -ENOSPC;
        return true;
    };
    try {
        backup({"/dev/vdb"});
        ADD_FAILURE() << "the backup of a corrupted snapshot succeeded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("; the image and the state file are unchanged"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(files() == before);
    interrupted = nullptr;
    kernel.devices["/dev/vdb"].error_code = 0;
    backup({"/dev/vdb"});
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].bytes_read, bs);
    expect_images_equal();
}

// --verify compares the image with a second read of the snapshot, not with
// the buffers it wrote: a first read that gave other data than the
// snapshot holds is found.
TEST_F(BackupJob, VerifyReadsTheSnapshotAgain) {
    backup();
    write("/dev/vdb", 5, 'x');
    // The "snapshot" changes under the copy's last piece: what was copied
    // is not what a second read gives.
    on_progress = [&](const backup::DeviceReport& r) {
        if (r.device == "/dev/vdb" && r.bytes_read == r.to_read) {
            std::string data = content["/dev/vdb"];
            data[5 * bs + 200] = 'q';
            write_file(image_of("/dev/vdb"), data);
        }
    };
    try {
        backup({"/dev/vdb"});
        FAIL() << "verified";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("differs from a second read of the snapshot at byte " +
                                             std::to_string(5 * bs + 200)),
                  std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(kernel.snapshots.empty());
}

// The state file as if the image had changed under its file system (bit
// rot, a write to the device below): the binding takes the image's new
// identity, the checksums stay those of what the backup wrote.
void rebind(const std::filesystem::path& state, const std::filesystem::path& image) {
    auto st = cbt::read_state_file(state);
    struct stat now;
    ASSERT_EQ(::stat(image.c_str(), &now), 0);
    st.image->file = cbt::FileIdentity::of(now);
    cbt::write_state_file(state, st);
}

TEST_F(BackupJob, AnImageWrittenSinceOrCopiedBackIsAFullBackup) {
    backup();
    const std::string first = read_file(out / "vdb.img");
    // Written with the same bytes: its ctime tells.
    write_file(out / "vdb.img", first);
    write("/dev/vdb", 5, 'x');
    backup();
    EXPECT_FALSE(reports[0].incremental);
    EXPECT_NE(reports[0].reason.find("the image file changed since the last backup"),
              std::string::npos)
        << reports[0].reason;
    EXPECT_TRUE(reports[1].incremental);
    expect_images_equal();
    // An older copy put back in place of the image (another file).
    std::filesystem::copy_file(out / "vdb.img", dir / "old.img");
    write("/dev/vdb", 6, 'y');
    backup();
    ASSERT_TRUE(reports[0].incremental);
    std::filesystem::rename(dir / "old.img", out / "vdb.img");
    write("/dev/vdb", 8, 'z');
    backup();
    EXPECT_FALSE(reports[0].incremental);
    EXPECT_NE(
        reports[0].reason.find("the image file is not the one the state file was written for"),
        std::string::npos)
        << reports[0].reason;
    expect_images_equal();
}

TEST_F(BackupJob, AStateOfAnOlderBlksnapIsAFullBackup) {
    backup();
    auto st = cbt::read_state_file(out / "vdc.state");
    st.image.reset();
    cbt::write_state_file(out / "vdc.state", st); // version 1
    backup();
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_FALSE(reports[1].incremental);
    EXPECT_EQ(reports[1].reason, "the state file has no image binding (written by an older "
                                 "blksnap): the image cannot be checked");
    EXPECT_TRUE(cbt::read_state_file(out / "vdc.state").image.has_value());
    expect_images_equal();
}

// The blocks of the image that an incremental backup does not rewrite are
// checked against the checksums of the state file: a change that left the
// file's identity as it was is found.
TEST_F(BackupJob, ABlockThatDiffersFromItsChecksumIsAFullBackup) {
    backup();
    std::string img = read_file(out / "vdb.img");
    img[40 * bs + 10] ^= 1;
    write_file(out / "vdb.img", img);
    rebind(out / "vdb.state", out / "vdb.img");
    write("/dev/vdb", 5, 'x');
    write("/dev/vdb", 40, 'x'); // rewritten: not checked, not the reason
    backup({"/dev/vdb"});
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].checked_blocks, 62u); // all the others (64 at most by default)
    EXPECT_EQ(reports[0].checked_bytes, 62 * bs);
    img = read_file(out / "vdb.img");
    img[41 * bs + 10] ^= 1;
    write_file(out / "vdb.img", img);
    rebind(out / "vdb.state", out / "vdb.img");
    write("/dev/vdb", 5, 'y');
    backup({"/dev/vdb"});
    EXPECT_FALSE(reports[0].incremental);
    EXPECT_NE(reports[0].reason.find("block 41 of the image (bytes " + std::to_string(41 * bs) +
                                     " to " + std::to_string(42 * bs - 1) +
                                     ") is not what the last backup wrote there"),
              std::string::npos)
        << reports[0].reason;
    EXPECT_EQ(reports[0].bytes_read, size);
    expect_images_equal();
    // A smaller sample checks fewer.
    check_blocks = 5;
    write("/dev/vdb", 5, 'z');
    backup({"/dev/vdb"});
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].checked_blocks, 5u);
}

// --verify=full compares the whole image: a block changed in the image
// since the last backup, outside what this one writes and not checked
// before (--check-blocks=0), is found.
TEST_F(BackupJob, VerifyFullComparesTheWholeImage) {
    check_blocks = 0;
    backup();
    std::string img = read_file(out / "vdb.img");
    img[40 * bs + 10] ^= 1;
    write_file(out / "vdb.img", img);
    rebind(out / "vdb.state", out / "vdb.img");
    write("/dev/vdb", 5, 'x');
    backup({"/dev/vdb"}); // what it wrote is right
    EXPECT_TRUE(reports[0].incremental);
    EXPECT_EQ(reports[0].checked_blocks, 0u);
    EXPECT_TRUE(reports[0].verified);
    write("/dev/vdb", 6, 'y');
    verify = backup::Verify::full;
    const std::string state = read_file(out / "vdb.state");
    try {
        backup({"/dev/vdb"});
        FAIL() << "verified";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at byte " + std::to_string(40 * bs + 10)),
                  std::string::npos)
            << e.what();
    }
    // In place (no reflink here): the state says incomplete; with a reflink
    // copy, the image and the state are as they were.
    EXPECT_TRUE(read_file(out / "vdb.state") == state ||
                cbt::read_state_file(out / "vdb.state").incomplete);
}

TEST_F(BackupJob, ASnapshotLeftByAKilledBackupIsDestroyed) {
    std::filesystem::create_directories(out);
    const UniqueFd null = open_fd("/dev/null", O_RDONLY);
    const Uuid stale = kernel.snapshot_create(null.get(), 8);
    write_file(out / backup::snapshot_id_file, stale.str() + "\n");
    backup();
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("destroyed snapshot " + stale.str()), std::string::npos);
    EXPECT_TRUE(kernel.snapshots.empty());
    expect_images_equal();
}

TEST_F(BackupJob, ASnapshotLeftBehindButGoneMeanwhileIsNoError) {
    std::filesystem::create_directories(out);
    const UniqueFd null = open_fd("/dev/null", O_RDONLY);
    const Uuid stale = kernel.snapshot_create(null.get(), 8);
    write_file(out / backup::snapshot_id_file, stale.str() + "\n");
    // Destroyed by someone else between any look at the list and the call.
    kernel.fail_next("snapshot_destroy", stale.str(), ENOENT);
    backup();
    EXPECT_TRUE(notes.empty());
    EXPECT_FALSE(std::filesystem::exists(out / backup::snapshot_id_file));
    expect_images_equal();
}

TEST_F(BackupJob, DevicesWithTheSameFileNameAreRefused) {
    EXPECT_THROW(backup({"/dev/vdb", "/dev//vdb"}), Error);
    EXPECT_TRUE(kernel.snapshots.empty());
}

TEST_F(BackupJob, AnInterruptedBackupDestroysItsSnapshot) {
    backup();
    write("/dev/vdb", 1, 'i');
    const std::string before = read_file(out / "vdb.state");
    on_progress = [&](const backup::DeviceReport&) { throw Error(EINTR, "backup", "interrupted"); };
    try {
        backup();
        ADD_FAILURE() << "not interrupted";
    } catch (const backup::BackupFailed& e) {
        // After the first write: what the job left is told.
        EXPECT_EQ(e.code(), EINTR);
        EXPECT_FALSE(e.aftermath().empty());
        EXPECT_NE(std::string(e.what()).find("backup: interrupted (Interrupted system call); " +
                                             e.aftermath()),
                  std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(kernel.snapshots.empty());
    EXPECT_FALSE(std::filesystem::exists(out / backup::snapshot_id_file));
    // The image's name holds the complete image of the last backup (a
    // reflink copy was written) or nothing (in place: the state says so).
    if (present(out / "vdb.img")) {
        EXPECT_TRUE(read_file(out / "vdb.state") == before);
        EXPECT_FALSE(present(out / "vdb.img.partial"));
    } else {
        EXPECT_TRUE(cbt::read_state_file(out / "vdb.state").incomplete);
        EXPECT_TRUE(present(out / "vdb.img.partial"));
    }
    on_progress = nullptr;
    backup();
    expect_images_equal();
}

// ---------------------------------------------------------------- restore points

// The bytes of a point as a tool reads them.
std::string point_content(const backup::Point& p) {
    auto reader = backup::PointReader::open(p);
    std::string data(reader->size(), '\0');
    reader->read(0, std::as_writable_bytes(std::span(data)));
    return data;
}

class RestorePoints : public BackupJob, public ::testing::WithParamInterface<backup::PointFormat> {
protected:
    void SetUp() override {
        BackupJob::SetUp();
        format = GetParam();
    }
    std::vector<backup::Point> points() {
        return backup::list_points(backup::points_dir(out, "vdb"));
    }
};

TEST_P(RestorePoints, EachBackupLeavesAPointEqualToItsTakeAndKeepDropsTheOldest) {
    keep = 3;
    std::vector<std::string> at_take;
    for (int i = 0; i < 5; ++i) {
        if (i) {
            write("/dev/vdb", static_cast<std::uint32_t>(i * 7), char('a' + i));
            write("/dev/vdb", static_cast<std::uint32_t>(i * 7 + 1), char('a' + i));
        }
        backup({"/dev/vdb"});
        at_take.push_back(content["/dev/vdb"]);
        ASSERT_TRUE(reports[0].point);
        EXPECT_EQ(reports[0].point->meta.id, std::uint64_t(i + 1));
        EXPECT_EQ(reports[0].point->meta.incremental, i > 0);
    }
    const auto kept = points();
    ASSERT_EQ(kept.size(), 3u);
    for (std::size_t k = 0; k < kept.size(); ++k) {
        const auto& p = kept[k];
        EXPECT_EQ(p.meta.id, k + 3);
        EXPECT_EQ(p.meta.format, GetParam());
        EXPECT_EQ(point_content(p), at_take[k + 2]) << "point " << p.meta.id;
        if (GetParam() == backup::PointFormat::qcow2) {
            backup::run_program({"qemu-img", "check", "-q", p.data.string()});
            // The oldest kept point took in the ones dropped: it is a base.
            EXPECT_EQ(p.meta.backing,
                      k ? std::optional<std::uint64_t>(p.meta.id - 1) : std::nullopt);
            // An incremental point stores what changed, not the device.
            if (k) {
                EXPECT_LT(p.meta.bytes_stored, size / 2);
            }
        }
        auto copy = p;
        backup::verify_point(copy);
        EXPECT_TRUE(backup::list_points(p.data.parent_path())[k].meta.verified);
    }
    // Restored to a file, a point is the device at its take.
    backup::RestoreOptions ro;
    ro.dir = out;
    ro.point = 4;
    ro.target = dir / "restored";
    const auto r = backup::run_restore(kernel, ro, {});
    EXPECT_EQ(r.bytes_written, size);
    EXPECT_EQ(read_file(dir / "restored"), at_take[3]);
}

TEST_P(RestorePoints, AnInterruptedBackupLeavesTheEarlierPointsAndNoNewOne) {
    backup({"/dev/vdb"});
    write("/dev/vdb", 3, 'q');
    backup({"/dev/vdb"});
    const auto second = content["/dev/vdb"];
    write("/dev/vdb", 9, 'r');
    on_progress = [&](const backup::DeviceReport&) { throw Error(EINTR, "backup", "interrupted"); };
    EXPECT_THROW(backup({"/dev/vdb"}), Error);
    on_progress = nullptr;
    auto kept = points();
    ASSERT_EQ(kept.size(), 2u);
    EXPECT_EQ(point_content(kept[1]), second);
    backup({"/dev/vdb"});
    kept = points();
    ASSERT_EQ(kept.size(), 3u);
    EXPECT_EQ(point_content(kept[1]), second);
    EXPECT_EQ(point_content(kept[2]), content["/dev/vdb"]);
}

TEST_P(RestorePoints, AFlippedByteFailsVerifyAndRestore) {
    backup({"/dev/vdb"});
    write("/dev/vdb", 6, 'f');
    backup({"/dev/vdb"});
    auto p = points().back();
    const std::string was = point_content(p);
    // Flip the first byte of block 6's data, written by the last backup.
    if (GetParam() == backup::PointFormat::raw) {
        UniqueFd fd = open_fd(p.data.string(), O_RDWR);
        const char c = char(was[6 * bs + 100] ^ 1);
        ASSERT_EQ(::pwrite(fd.get(), &c, 1, 6 * bs + 100), 1);
    } else {
        // Where the overlay keeps it: the one cluster with that byte.
        std::string file = read_file(p.data);
        const auto at = file.find(std::string(5000, 'f'));
        ASSERT_NE(at, std::string::npos);
        file[at] = char(file[at] ^ 1);
        write_file(p.data, file);
    }
    try {
        backup::verify_point(p);
        ADD_FAILURE() << "verify passed";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EIO);
        EXPECT_NE(std::string(e.what()).find("block 6 "), std::string::npos) << e.what();
    }
    backup::RestoreOptions ro;
    ro.dir = out;
    ro.target = dir / "restored";
    EXPECT_THROW(backup::run_restore(kernel, ro, {}), Error);
}

TEST_P(RestorePoints, VerifyMarksThePointAsItIsNowAndTellsWhenRetentionRemovedIt) {
    backup({"/dev/vdb"});
    write("/dev/vdb", 2, 'v');
    backup({"/dev/vdb"});
    auto listed = points();
    ASSERT_EQ(listed.size(), 2u);
    // What verify read is older than the file: the mark is added to the file.
    auto stale = listed[1];
    stale.meta.bytes_changed += 1;
    backup::verify_point(stale);
    const auto now = points();
    EXPECT_TRUE(now[1].meta.verified);
    EXPECT_EQ(now[1].meta.bytes_changed, listed[1].meta.bytes_changed);
    // Removed meanwhile: no meta file is made up, and the error says why.
    ASSERT_EQ(::unlink(listed[0].meta_file.c_str()), 0);
    try {
        backup::verify_point(listed[0]);
        ADD_FAILURE() << "verify of a removed point marked it";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_NE(std::string(e.what()).find("retention removed the point"), std::string::npos)
            << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(listed[0].meta_file));
}

TEST_P(RestorePoints, AMergeInterruptedByACrashIsFinishedNextTime) {
    keep = 0;
    for (int i = 0; i < 3; ++i) {
        write("/dev/vdb", static_cast<std::uint32_t>(i + 10), char('m' + i));
        backup({"/dev/vdb"});
    }
    const auto before = points();
    ASSERT_EQ(before.size(), 3u);
    // What keep_newest does first: the meta file of the point it drops.
    std::filesystem::remove(before[0].meta_file);
    // What a backup killed between its two renames leaves.
    std::filesystem::copy_file(before[2].meta_file, out / "vdb.points" / "000004.meta");
    std::vector<std::string> said;
    backup::tidy_points(backup::points_dir(out, "vdb"),
                        [&](const std::string& m) { said.push_back(m); });
    const auto after = points();
    ASSERT_EQ(after.size(), 2u);
    EXPECT_FALSE(std::filesystem::exists(before[0].data));
    EXPECT_EQ(point_content(after[0]), point_content(before[1]));
    EXPECT_EQ(point_content(after[1]), point_content(before[2]));
    EXPECT_FALSE(std::filesystem::exists(out / "vdb.points" / "000004.meta"));
    EXPECT_EQ(said.size(), 2u);
}

TEST(PointMeta, AVersion1FileIsStillReadAndDamagedChecksumsAreRefused) {
    TmpDir dir;
    backup::PointMeta m;
    m.device = "/dev/vdb";
    m.id = 7;
    m.generation_id = Uuid::parse("cc892bca-626b-425d-b4df-7db868c956d3");
    m.size = 3 * 65536 + 512;
    m.block_size = 65536;
    m.sums = {0x0123456789abcdefull, 0xfedcba9876543210ull, 0, 0xffffffffffffffffull};
    const auto file = dir / "000007.meta";
    backup::write_point_meta(file, m);
    EXPECT_EQ(backup::read_point_meta(file).sums, m.sums);
    // Version 1 (blksnap 1.0's first points): a string per checksum.
    std::string text = read_file(file);
    const auto sums_at = text.find("\"sums\":\"");
    ASSERT_NE(sums_at, std::string::npos);
    text = text.substr(0, sums_at) +
           "\"sums\":[\"0123456789abcdef\",\"fedcba9876543210\",\"0000000000000000\","
           "\"ffffffffffffffff\"]}\n";
    text.replace(text.find("\"version\":2"), 11, "\"version\":1");
    write_file(file, text);
    EXPECT_EQ(backup::read_point_meta(file).sums, m.sums);
    // A digit that is not hex, or a checksum cut short.
    backup::write_point_meta(file, m);
    const std::string good = read_file(file);
    for (const auto& [from, to] :
         {std::pair<std::string, std::string>{"0123456789abcdef", "0123456789abcdeg"},
          {"0123456789abcdef", "0123456789abcde"}}) {
        std::string bad = good;
        bad.replace(bad.find(from), from.size(), to);
        write_file(file, bad);
        try {
            backup::read_point_meta(file);
            ADD_FAILURE() << "read " << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), EBADMSG) << e.what();
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, RestorePoints,
                         ::testing::Values(backup::PointFormat::raw, backup::PointFormat::qcow2),
                         [](const auto& info) {
                             return std::string(backup::point_format_name(info.param));
                         });

} // namespace
} // namespace blksnap::test
