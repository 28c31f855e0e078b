// cbt: reading the map, changed extents, the change-state file.
#include "fake_kernel.hpp"
#include "tmp_dir.hpp"

#include <blksnap/cbt/changes.hpp>
#include <blksnap/cbt/map.hpp>
#include <blksnap/cbt/state_file.hpp>
#include <blksnap/error.hpp>

#include <cerrno>
#include <fstream>
#include <gtest/gtest.h>
#include <xxhash.h>

namespace blksnap::test {
namespace {

using cbt::Changes;
using cbt::Extent;
using cbt::FullBackupNeeded;
using cbt::Position;

const Uuid gen1 = Uuid::parse("6a0d2c54-1f1e-4d8e-9a51-000000000001");
const Uuid gen2 = Uuid::parse("6a0d2c54-1f1e-4d8e-9a51-000000000002");

CbtInfo info_of(std::uint64_t capacity, std::uint32_t block_size, std::uint32_t blocks,
                std::uint8_t changes, const Uuid& gen = gen1) {
    return {capacity, block_size, blocks, gen, changes};
}

std::vector<Extent> extents(const Changes& c) {
    EXPECT_TRUE(std::holds_alternative<std::vector<Extent>>(c));
    return std::holds_alternative<std::vector<Extent>>(c) ? std::get<std::vector<Extent>>(c)
                                                          : std::vector<Extent>{};
}

TEST(ChangedSince, MergesRunsOfChangedBlocks) {
    // 4096-byte blocks = 8 sectors.
    const std::vector<std::uint8_t> map{0, 3, 3, 1, 2, 4, 0, 5};
    const auto info = info_of(8 * 4096, 4096, 8, 5);
    EXPECT_EQ(extents(cbt::changed_since(info, map, {gen1, 2})),
              (std::vector<Extent>{{8, 16}, {40, 8}, {56, 8}}));
    EXPECT_EQ(extents(cbt::changed_since(info, map, {gen1, 0})),
              (std::vector<Extent>{{8, 40}, {56, 8}}));
    EXPECT_TRUE(extents(cbt::changed_since(info, map, {gen1, 5})).empty());
}

TEST(ChangedSince, ClipsTheLastBlockToCapacity) {
    const std::vector<std::uint8_t> map{0, 1, 1};
    // Capacity 2 blocks + 3 sectors: the last block holds only 3 sectors.
    const auto info = info_of(2 * 65536 + 3 * 512, 65536, 3, 1);
    EXPECT_EQ(extents(cbt::changed_since(info, map, {gen1, 0})),
              (std::vector<Extent>{{128, 128 + 3}}));
}

TEST(ChangedSince, GenerationChangeMeansFullBackup) {
    const std::vector<std::uint8_t> map{1, 0};
    const Changes c = cbt::changed_since(info_of(2 * 4096, 4096, 2, 1, gen2), map, {gen1, 200});
    ASSERT_TRUE(std::holds_alternative<FullBackupNeeded>(c));
    EXPECT_NE(std::get<FullBackupNeeded>(c).reason.find(gen2.str()), std::string::npos);
}

TEST(ChangedSince, NearTheWrap) {
    // Changes numbers run up to 255 within a generation.
    const std::vector<std::uint8_t> map{255, 254, 253, 0};
    const auto info = info_of(4 * 4096, 4096, 4, 255);
    EXPECT_EQ(extents(cbt::changed_since(info, map, {gen1, 254})), (std::vector<Extent>{{0, 8}}));
    EXPECT_EQ(extents(cbt::changed_since(info, map, {gen1, 252})), (std::vector<Extent>{{0, 24}}));
    EXPECT_TRUE(extents(cbt::changed_since(info, map, {gen1, 255})).empty());
    // The position is ahead of the tracker: cannot be trusted.
    EXPECT_TRUE(std::holds_alternative<FullBackupNeeded>(
        cbt::changed_since(info_of(4 * 4096, 4096, 4, 3), map, {gen1, 4})));
}

TEST(ChangedSince, RefusesAMapThatDoesNotFitTheInfo) {
    const std::vector<std::uint8_t> map{1, 1};
    EXPECT_THROW(cbt::changed_since(info_of(3 * 4096, 4096, 3, 1), map, {gen1, 0}), Error);
    EXPECT_THROW(cbt::changed_since(info_of(2 * 100, 100, 2, 1), map, {gen1, 0}), Error);
}

TEST(ReadMap, ReadsInPieces) {
    FakeKernel kernel;
    kernel.add_device("/dev/vdb", 10000 * 4096ull, 4096).attached = true;
    for (std::uint32_t b : {0u, 4095u, 4096u, 9999u})
        kernel.write_block("/dev/vdb", b);
    kernel.max_map_piece = 1000; // the kernel copies less than asked
    DeviceFilter filter(kernel, "/dev/vdb");
    const auto map = cbt::read_map(filter, filter.cbt_info(), 4096);
    EXPECT_EQ(map, kernel.devices["/dev/vdb"].map);
    EXPECT_EQ(std::count(map.begin(), map.end(), 1), 4);
    EXPECT_EQ(std::count(kernel.calls.begin(), kernel.calls.end(), "cbtmap /dev/vdb"), 10);
}

TEST(ReadMap, ShortMapIsAnError) {
    FakeKernel kernel;
    kernel.add_device("/dev/vdb", 100 * 4096ull, 4096).attached = true;
    DeviceFilter filter(kernel, "/dev/vdb");
    CbtInfo info = filter.cbt_info();
    info.block_count += 5; // the kernel's map is shorter than announced
    EXPECT_THROW(cbt::read_map(filter, info), Error);
}

cbt::CbtState sample_state() {
    std::vector<std::uint8_t> map(1000);
    for (std::size_t i = 0; i < map.size(); ++i)
        map[i] = static_cast<std::uint8_t>(i * 7);
    return cbt::CbtState::of(info_of(1000 * 65536ull - 512, 65536, 1000, 42), map);
}

void expect_equal(const cbt::CbtState& a, const cbt::CbtState& b) {
    EXPECT_EQ(a.position, b.position);
    EXPECT_EQ(a.block_size, b.block_size);
    EXPECT_EQ(a.device_capacity, b.device_capacity);
    EXPECT_EQ(a.map, b.map);
}

TEST(StateFile, LayoutIsFixedLittleEndian) {
    const auto bytes = cbt::encode_state(sample_state());
    ASSERT_EQ(bytes.size(), 48u + 1000 + 8);
    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "BLKSNCBT");
    EXPECT_EQ(bytes[8], 1); // version 1, little-endian
    EXPECT_EQ(bytes[9] | bytes[10] | bytes[11], 0);
    EXPECT_EQ(bytes[12], 0x6a);                  // generation id, raw bytes
    EXPECT_EQ(bytes[28], 42);                    // changes number
    EXPECT_EQ(bytes[34], 1);                     // block size 0x10000
    EXPECT_EQ(bytes[36] | bytes[37] << 8, 1000); // block count
    EXPECT_EQ(bytes[48 + 3], 21);                // map
}

TEST(StateFile, WritesAtomicallyAndReadsBack) {
    TmpDir dir;
    const auto path = dir / "vdb.cbt";
    cbt::write_state_file(path, sample_state());
    expect_equal(cbt::read_state_file(path), sample_state());
    // Overwrite: no temporary files are left behind.
    auto next = sample_state();
    next.position.changes_number = 43;
    cbt::write_state_file(path, next);
    EXPECT_EQ(cbt::read_state_file(path).position.changes_number, 43);
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

class DamagedStateFile : public ::testing::Test {
protected:
    TmpDir dir;
    std::filesystem::path path = dir / "state";
    std::vector<std::uint8_t> bytes = cbt::encode_state(sample_state());

    void expect_rejected(const std::string& reason) {
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
        try {
            cbt::read_state_file(path);
            ADD_FAILURE() << "accepted, expected: " << reason;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), EBADMSG);
            EXPECT_NE(std::string(e.what()).find(path.string() + ": " + reason), std::string::npos)
                << e.what();
        }
    }
};

TEST_F(DamagedStateFile, FlippedMapByte) {
    bytes[48 + 500] ^= 0x10;
    expect_rejected("checksum mismatch");
}

TEST_F(DamagedStateFile, FlippedHeaderByte) {
    bytes[28] ^= 1;
    expect_rejected("checksum mismatch");
}

TEST_F(DamagedStateFile, FlippedChecksumByte) {
    bytes.back() ^= 0x80;
    expect_rejected("checksum mismatch");
}

TEST_F(DamagedStateFile, Truncated) {
    bytes.resize(bytes.size() - 1);
    expect_rejected("truncated");
    bytes.resize(20);
    expect_rejected("truncated");
    bytes.clear();
    expect_rejected("truncated");
}

TEST_F(DamagedStateFile, TrailingData) {
    bytes.push_back(0);
    expect_rejected("wrong size");
}

TEST_F(DamagedStateFile, WrongMagic) {
    bytes[0] = 'X';
    expect_rejected("not a blksnap change-state file (bad magic)");
}

TEST_F(DamagedStateFile, WrongVersion) {
    bytes[8] = 3;
    expect_rejected("unsupported version 3");
    bytes[8] = 2; // a version 1 file called 2: no room for the binding
    expect_rejected("truncated");
}

TEST_F(DamagedStateFile, FlagsInVersion1) {
    bytes[29] = 1;
    expect_rejected("checksum mismatch");
    const auto end = bytes.size() - 8;
    const std::uint64_t sum = XXH64(bytes.data(), end, 0);
    for (int i = 0; i < 8; ++i)
        bytes[end + i] = static_cast<std::uint8_t>(sum >> (8 * i));
    expect_rejected("reserved bytes are not zero");
}

// A state bound to its image (blksnap backup's): version 2.
cbt::CbtState bound_state() {
    auto st = sample_state();
    std::vector<std::uint64_t> sums(1000);
    for (std::size_t i = 0; i < sums.size(); ++i)
        sums[i] = 0x0123456789abcdefull * (i + 1);
    st.image = cbt::ImageBinding{
        {0x10302, 77, 1000 * 65536ull - 512, 1700000000, 123456789, -5, 999999999}, sums};
    return st;
}

// Rewrites the trailing checksum of BYTES.
void reseal(std::vector<std::uint8_t>& bytes) {
    const auto end = bytes.size() - 8;
    const std::uint64_t sum = XXH64(bytes.data(), end, 0);
    for (int i = 0; i < 8; ++i)
        bytes[end + i] = static_cast<std::uint8_t>(sum >> (8 * i));
}

TEST(StateFile, Version2BindsTheImage) {
    auto st = bound_state();
    auto bytes = cbt::encode_state(st);
    ASSERT_EQ(bytes.size(), 48u + 1000 + 56 + 8 * 1000 + 8);
    EXPECT_EQ(bytes[8], 2);
    EXPECT_EQ(bytes[29], 0);
    const std::size_t b = 48 + 1000;
    EXPECT_EQ(bytes[b], 0x02); // st_dev, little-endian
    EXPECT_EQ(bytes[b + 1], 0x03);
    EXPECT_EQ(bytes[b + 2], 0x01);
    EXPECT_EQ(bytes[b + 8], 77);    // inode
    EXPECT_EQ(bytes[b + 32], 0xfb); // ctime -5 seconds
    EXPECT_EQ(bytes[b + 39], 0xff);
    EXPECT_EQ(bytes[b + 48] | bytes[b + 49] << 8, 1000); // checksum count
    EXPECT_EQ(bytes[b + 56], 0xef);                      // the first checksum
    auto back = cbt::decode_state(bytes, "s");
    expect_equal(back, st);
    EXPECT_EQ(back.image, st.image);
    EXPECT_FALSE(back.incomplete);
    st.incomplete = true;
    bytes = cbt::encode_state(st);
    EXPECT_EQ(bytes[29], 1);
    EXPECT_TRUE(cbt::decode_state(bytes, "s").incomplete);
    // Without a binding: version 1, as before.
    st.image.reset();
    EXPECT_THROW(cbt::encode_state(st), Error); // incomplete needs a binding
    st.incomplete = false;
    EXPECT_EQ(cbt::encode_state(st), cbt::encode_state(sample_state()));
    // As many checksums as the image has blocks.
    st = bound_state();
    st.image->sums.pop_back();
    EXPECT_THROW(cbt::encode_state(st), Error);
}

TEST_F(DamagedStateFile, BadBinding) {
    const auto good = cbt::encode_state(bound_state());
    const std::size_t b = 48 + 1000;
    bytes = good;
    bytes[b + 100] ^= 1;
    expect_rejected("checksum mismatch");
    bytes = good;
    bytes.pop_back();
    expect_rejected("truncated");
    bytes = good;
    bytes[b + 48] = 0xe7; // 999 checksums: the size no longer fits
    expect_rejected("wrong size");
    bytes = good;
    bytes[b + 48] = 0xe7;
    bytes.erase(bytes.end() - 16, bytes.end() - 8);
    reseal(bytes);
    expect_rejected("image binding: 999 block checksums for an image of 65535488 bytes in blocks "
                    "of 65536");
    bytes = good;
    bytes[29] = 2;
    reseal(bytes);
    expect_rejected("reserved bytes are not zero");
    bytes = good;
    bytes[b + 52] = 1;
    reseal(bytes);
    expect_rejected("reserved bytes are not zero");
    bytes = good;
    bytes[b + 43] = 0x40; // mtime nanoseconds past a second
    reseal(bytes);
    expect_rejected("image binding: nanoseconds out of range");
}

TEST(StateFile, MissingFileNamesThePath) {
    try {
        cbt::read_state_file("/var/tmp/blksnap-no-such-state");
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_NE(std::string(e.what()).find("/var/tmp/blksnap-no-such-state"), std::string::npos);
    }
}

TEST(StateFile, MismatchedDeviceIsRejected) {
    const auto state = sample_state();
    cbt::check_same_device(state, info_of(1000 * 65536ull - 512, 65536, 1000, 50, gen2), "f");
    for (const auto& other : {info_of(1000 * 65536ull, 65536, 1000, 42),
                              info_of(1000 * 65536ull - 512, 32768, 2000, 42)}) {
        try {
            cbt::check_same_device(state, other, "vdb.cbt");
            ADD_FAILURE();
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), EXDEV);
            EXPECT_NE(std::string(e.what()).find("vdb.cbt: made for a device of"),
                      std::string::npos)
                << e.what();
        }
    }
}

} // namespace
} // namespace blksnap::test
