// blksnap backup: file names, the full/incremental decision, copy plans,
// the target image and the whole job against the fake kernel, with regular
// files standing in for the snapshot images.
#include "backup_job.hpp"
#include "backup_plan.hpp"
#include "backup_target.hpp"
#include "fake_kernel.hpp"
#include "progress.hpp"
#include "tmp_dir.hpp"

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

using cli::ByteRange;
using cli::CopyStep;
using cli::PreviousBackup;

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
    }
    cli::Decision decide() { return cli::decide(prev, info, map, 16 * bs); }
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
    const auto d = cli::decide(prev, info, map, 32 * bs);
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

// ---------------------------------------------------------------- plans

TEST(CopyPlan, NearExtentsShareAReadButOnlyChangesAreWritten) {
    // Sectors: [0,8) [16,24) close together; [10000,10008) far; the last
    // extent runs past the end.
    const std::vector<cbt::Extent> ext{{0, 8}, {16, 8}, {10000, 8}, {20000, 100}};
    const auto plan = cli::copy_plan(ext, 20000 * 512 + 4096, 8192);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 24 * 512}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 4096}, {8192, 4096}}));
    EXPECT_EQ(plan[1].read, (ByteRange{10000 * 512, 4096}));
    EXPECT_EQ(plan[2].read, (ByteRange{20000 * 512, 4096}));
    EXPECT_EQ(plan[2].write, (std::vector<ByteRange>{{20000 * 512, 4096}}));
    EXPECT_EQ(cli::bytes_to_read(plan), 24 * 512 + 4096 + 4096);
    EXPECT_EQ(cli::bytes_to_write(plan), 4 * 4096);
}

TEST(CopyPlan, AdjacentExtentsMergeAndNoGapMeansSeparateReads) {
    const std::vector<cbt::Extent> ext{{0, 8}, {8, 8}, {24, 8}};
    const auto plan = cli::copy_plan(ext, 1 << 20, 0);
    ASSERT_EQ(plan.size(), 2u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 8192}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 8192}}));
    EXPECT_EQ(plan[1].read, (ByteRange{24 * 512, 4096}));
}

TEST(CopyPlan, ExtentsPastTheEndAreDropped) {
    const std::vector<cbt::Extent> ext{{100, 8}};
    EXPECT_TRUE(cli::copy_plan(ext, 100 * 512, 0).empty());
    EXPECT_TRUE(cli::copy_plan({}, 100 * 512, 0).empty());
}

TEST(CopyPlan, FullPlanIsOneReadOfEverything) {
    const auto plan = cli::full_plan(1 << 20);
    ASSERT_EQ(plan.size(), 1u);
    EXPECT_EQ(plan[0].read, (ByteRange{0, 1 << 20}));
    EXPECT_EQ(plan[0].write, (std::vector<ByteRange>{{0, 1 << 20}}));
    EXPECT_TRUE(cli::full_plan(0).empty());
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

TEST(TargetImage, NewImageIsSizedAndSparseWhereZero) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'x')); // an old image is replaced
    auto img = cli::TargetImage::create(path, 1 << 20);
    std::string data(256 << 10, '\0');
    data.replace(8192, 5, "hello"); // one 4 KiB granule of data
    data.replace(200 << 10, 4096, std::string(4096, 'y'));
    img.write(64 << 10, bytes_of(data));
    img.sync();
    EXPECT_EQ(img.bytes_written(), 2 * 4096u);
    std::string want(1 << 20, '\0');
    want.replace(64 << 10, data.size(), data);
    EXPECT_EQ(read_file(path), want);
    EXPECT_LE(allocated(path), 64u << 10); // holes, give or take the file system's blocks
}

TEST(TargetImage, UpdateWritesDataAndPunchesZeros) {
    TmpDir dir;
    const auto path = dir / "vdb.img";
    write_file(path, std::string(1 << 20, 'o'));
    auto img = cli::TargetImage::open(path);
    std::string data(64 << 10, 'n');
    std::fill_n(data.begin() + 4096, 16384, '\0');
    img.write(4096 + 512, bytes_of(data)); // not aligned: partial granules at both ends
    img.sync();
    std::string want(1 << 20, 'o');
    want.replace(4096 + 512, data.size(), data);
    EXPECT_EQ(read_file(path), want);
    // The zeros lie at 8704..24576 of the file: the whole 4 KiB pieces
    // among them, 12288..24576, are punched; the rest is written.
    EXPECT_EQ(img.bytes_written(), data.size() - 12288);
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
    EXPECT_EQ(cli::first_difference(a, b, ranges), std::nullopt);
    content[2500000] ^= 1;
    write_file(b, content);
    EXPECT_EQ(cli::first_difference(a, b, std::vector<ByteRange>{{512, 4096}}), std::nullopt);
    EXPECT_EQ(cli::first_difference(a, b, ranges), 2500000u);
    // A shorter file differs where it ends.
    write_file(b, content.substr(0, 1 << 20));
    EXPECT_EQ(cli::first_difference(a, b, std::vector<ByteRange>{{0, 3 << 20}}), 1u << 20);
    // The image is never read through a link.
    std::filesystem::create_symlink(a, dir / "link.img");
    EXPECT_THROW(cli::first_difference(dir / "link.img", b, ranges), Error);
    cli::Xxh64 h;
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
    cli::remove_durably(dir / "a");
    cli::remove_durably(dir / "a");
    EXPECT_FALSE(std::filesystem::exists(dir / "a"));
}

TEST(LoadPrevious, TellsMissingDamagedAndValid) {
    TmpDir dir;
    auto p = cli::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::missing);
    EXPECT_FALSE(p.image);
    write_file(dir / "vdb.img", std::string(4096, 'a'));
    write_file(dir / "vdb.state", "garbage");
    p = cli::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::damaged);
    EXPECT_NE(p.problem.find("vdb.state: truncated"), std::string::npos) << p.problem;
    EXPECT_TRUE(p.image);
    EXPECT_EQ(p.image_size, 4096u);
    const auto st = cbt::CbtState::of(info_of(16 * bs, gen_a, 3), std::vector<std::uint8_t>(16));
    cbt::write_state_file(dir / "vdb.state", st);
    p = cli::load_previous(dir / "vdb.img", dir / "vdb.state");
    EXPECT_EQ(p.state, PreviousBackup::State::valid);
    EXPECT_EQ(p.cbt.position, st.position);
}

TEST(LoadPrevious, UnreadableOrLinkedIsAnErrorNotDamage) {
    TmpDir dir;
    write_file(dir / "vdb.img", std::string(4096, 'a'));
    // Cannot be read (here: a directory, EISDIR): an error, no full backup.
    std::filesystem::create_directory(dir / "vdb.state");
    try {
        cli::load_previous(dir / "vdb.img", dir / "vdb.state");
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
            cli::load_previous(image, state);
            FAIL() << "no error for " << image << " " << state;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ELOOP) << e.what();
        }
    }
}

// ---------------------------------------------------------------- progress

TEST(Progress, LineShowsShareRateAndEta) {
    EXPECT_EQ(cli::human_bytes(512), "512 B");
    EXPECT_EQ(cli::human_bytes(3 << 20), "3.0 MiB");
    EXPECT_EQ(cli::clock_text(3723), "1:02:03");
    EXPECT_EQ(cli::clock_text(65), "1:05");
    EXPECT_EQ(cli::ProgressBar::line("vdb", 1 << 20, 4 << 20, 2.0),
              "vdb [#######.......................] 25% 1.0 MiB/4.0 MiB 512.0 KiB/s ETA 0:06");
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
    std::vector<cli::DeviceReport> reports;
    std::vector<std::string> notes;
    std::function<void(const cli::DeviceReport&)> on_progress;
    cli::Verify verify = cli::Verify::written;
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
        cli::BackupOptions o;
        o.devices = devs;
        o.dir = out;
        o.storage = dir.path();
        o.limit = 1 << 20;
        o.verify = verify;
        o.max_gap = 0;
        cli::BackupHooks h;
        h.image_path = [&](const std::string& dev, const SnapshotInfo& si) {
            EXPECT_FALSE(si.image.empty());
            return image_of(dev);
        };
        h.note = [&](const std::string& m) { notes.push_back(m); };
        h.progress = [&](const cli::DeviceReport& r) {
            if (on_progress)
                on_progress(r);
        };
        h.done = [&](const cli::DeviceReport& r) { reports.push_back(r); };
        reports.clear();
        cli::run_backup(kernel, o, h);
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
    EXPECT_FALSE(std::filesystem::exists(out / cli::snapshot_id_file));

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

TEST_F(BackupJob, CorruptionDuringTheCopyFailsAndKeepsTheState) {
    backup();
    const std::string before = read_file(out / "vdb.state");
    write("/dev/vdb", 7, 'q');
    on_progress = [&](const cli::DeviceReport& r) {
        if (r.device == "/dev/vdb")
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
        EXPECT_NE(what.find("the state file is unchanged"), std::string::npos) << what;
    }
    EXPECT_EQ(read_file(out / "vdb.state"), before);
    EXPECT_TRUE(kernel.snapshots.empty()) << "the snapshot outlived the failure";
    EXPECT_TRUE(reports.empty());
    // The next run copies the change again.
    on_progress = nullptr;
    kernel.devices["/dev/vdb"].error_code = 0;
    backup();
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
    on_progress = [&](const cli::DeviceReport& r) {
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

// --verify=full compares the whole image: a block changed in the image
// since the last backup, outside what this one writes, is found.
TEST_F(BackupJob, VerifyFullComparesTheWholeImage) {
    backup();
    std::string img = read_file(out / "vdb.img");
    img[40 * bs + 10] ^= 1;
    write_file(out / "vdb.img", img);
    write("/dev/vdb", 5, 'x');
    backup({"/dev/vdb"}); // what it wrote is right
    EXPECT_TRUE(reports[0].verified);
    write("/dev/vdb", 6, 'y');
    verify = cli::Verify::full;
    try {
        backup({"/dev/vdb"});
        FAIL() << "verified";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("at byte " + std::to_string(40 * bs + 10)),
                  std::string::npos)
            << e.what();
    }
}

TEST_F(BackupJob, ASnapshotLeftByAKilledBackupIsDestroyed) {
    std::filesystem::create_directories(out);
    const UniqueFd null = open_fd("/dev/null", O_RDONLY);
    const Uuid stale = kernel.snapshot_create(null.get(), 8);
    write_file(out / cli::snapshot_id_file, stale.str() + "\n");
    backup();
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("destroyed snapshot " + stale.str()), std::string::npos);
    EXPECT_TRUE(kernel.snapshots.empty());
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
    on_progress = [&](const cli::DeviceReport&) { throw Error(EINTR, "backup", "interrupted"); };
    EXPECT_THROW(backup(), Error);
    EXPECT_TRUE(kernel.snapshots.empty());
    EXPECT_EQ(read_file(out / "vdb.state"), before);
    EXPECT_FALSE(std::filesystem::exists(out / cli::snapshot_id_file));
}

} // namespace
} // namespace blksnap::test
