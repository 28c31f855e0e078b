// The image read engine on a real file under /var/tmp (O_DIRECT works
// there): streamed ranges, random access, handed-over blocks.
#include "tmp_dir.hpp"

#include <blksnap/align.hpp>
#include <blksnap/error.hpp>
#include <blksnap/image_reader.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

namespace blksnap::test {
namespace {

class ImageReaderTest : public ::testing::Test {
protected:
    TmpDir dir;
    std::string path = (dir / "image").string();
    std::vector<char> data;

    void SetUp() override {
        data.resize(3 * 1024 * 1024 + 5 * 512); // not a whole number of blocks
        std::mt19937 gen(42);
        for (auto& c : data)
            c = static_cast<char>(gen());
        std::ofstream(path, std::ios::binary).write(data.data(), std::streamsize(data.size()));
    }

    // Reads and checks that pieces come in order and match the file.
    std::size_t read_and_check(ReadOptions opt, std::uint64_t offset, std::uint64_t length) {
        ImageReader reader(path, opt);
        EXPECT_EQ(reader.size(), data.size());
        std::uint64_t expect = offset;
        std::size_t pieces = 0;
        reader.read(offset, length, [&](std::uint64_t at, std::span<const std::byte> piece) {
            EXPECT_EQ(at, expect);
            EXPECT_LE(piece.size(), opt.block_size);
            EXPECT_EQ(std::memcmp(piece.data(), data.data() + at, piece.size()), 0) << at;
            expect += piece.size();
            ++pieces;
        });
        EXPECT_EQ(expect, offset + length);
        return pieces;
    }
};

TEST_F(ImageReaderTest, DirectReadsEverythingInOrder) {
    EXPECT_EQ(read_and_check({65536, 4, true}, 0, data.size()), 49u);
}

TEST_F(ImageReaderTest, QueueDepthOneAndLarge) {
    read_and_check({4096, 1, true}, 512, data.size() - 1024);
    read_and_check({1 << 20, 64, true}, 0, data.size());
}

TEST_F(ImageReaderTest, ManyRangesInOneCall) {
    // Small ranges and large ones, some of several blocks, one empty, the
    // last cut by the end of the file; at depths 1 and 8.
    const std::vector<BlockRange> ranges{{0, 4096},       {8192, 1536},
                                         {65536, 0},      {65536, 3 * 65536 + 512},
                                         {1 << 20, 4096}, {data.size() - 2560, 2560}};
    for (unsigned depth : {1u, 8u}) {
        ImageReader reader(path, {65536, depth, true});
        std::vector<BlockRange> got;
        reader.read(ranges, [&](std::uint64_t at, std::span<const std::byte> piece) {
            EXPECT_LE(piece.size(), 65536u);
            EXPECT_EQ(std::memcmp(piece.data(), data.data() + at, piece.size()), 0) << at;
            if (!got.empty() && got.back().offset + got.back().length == at &&
                got.back().length % 65536 == 0)
                got.back().length += piece.size(); // the next piece of the same range
            else
                got.push_back({at, piece.size()});
        });
        std::vector<BlockRange> want;
        for (const auto& r : ranges)
            if (r.length)
                want.push_back(r);
        ASSERT_EQ(got.size(), want.size()) << depth;
        for (std::size_t i = 0; i < want.size(); ++i) {
            EXPECT_EQ(got[i].offset, want[i].offset) << i;
            EXPECT_EQ(got[i].length, want[i].length) << i;
        }
    }
}

TEST_F(ImageReaderTest, ManyRangesMustAscend) {
    ImageReader reader(path, {4096, 2, true});
    const std::vector<BlockRange> overlapping{{0, 8192}, {4096, 4096}};
    EXPECT_THROW(reader.read(overlapping, [](auto, auto) {}), Error);
    const std::vector<BlockRange> descending{{8192, 4096}, {0, 4096}};
    EXPECT_THROW(reader.read(descending, [](auto, auto) {}), Error);
}

TEST_F(ImageReaderTest, BufferedReadsAllowAnyRange) {
    EXPECT_EQ(read_and_check({1000, 3, false}, 7, 10001), 11u);
    EXPECT_EQ(read_and_check({1000, 3, false}, 0, 0), 0u);
}

TEST_F(ImageReaderTest, DirectRefusesUnalignedRanges) {
    ImageReader reader(path, {4096, 2, true});
    try {
        reader.read(100, 4096, [](auto, auto) {});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EINVAL);
        EXPECT_NE(std::string(e.what()).find("read " + path), std::string::npos) << e.what();
    }
    EXPECT_THROW(ImageReader(path, {1000, 2, true}), Error);
}

TEST_F(ImageReaderTest, RefusesRangesBeyondTheEnd) {
    ImageReader reader(path, {4096, 2, false});
    EXPECT_THROW(reader.read(data.size() - 10, 11, [](auto, auto) {}), Error);
    EXPECT_THROW(reader.read(data.size() + 1, 0, [](auto, auto) {}), Error);
}

TEST_F(ImageReaderTest, SinkExceptionStopsTheRead) {
    ImageReader reader(path, {4096, 8, true});
    int calls = 0;
    EXPECT_THROW(reader.read(0, data.size(),
                             [&](auto, auto) {
                                 if (++calls == 3)
                                     throw std::runtime_error("stop");
                             }),
                 std::runtime_error);
    EXPECT_EQ(calls, 3);
    // The reader is still usable after an aborted read.
    std::uint64_t total = 0;
    reader.read(0, 8192, [&](auto, auto piece) { total += piece.size(); });
    EXPECT_EQ(total, 8192u);
}

TEST_F(ImageReaderTest, RandomAccessAtAnyOffset) {
    ImageReader reader(path, {65536, 3, true});
    EXPECT_EQ(reader.alignment(), 512u);
    std::vector<std::byte> buf(200000);
    // Sequential in odd pieces (read-ahead), then anywhere.
    std::uint64_t off = 0;
    while (off < data.size()) {
        const std::size_t n = reader.read_at(buf, off);
        ASSERT_GT(n, 0u);
        ASSERT_EQ(std::memcmp(buf.data(), data.data() + off, n), 0) << off;
        off += n;
    }
    EXPECT_EQ(reader.read_at(buf, data.size()), 0u);
    EXPECT_EQ(reader.read_at(buf, data.size() + 12345), 0u);
    std::mt19937 rng(1);
    for (int i = 0; i < 300; ++i) {
        const std::uint64_t o = rng() % data.size();
        const std::size_t len = 1 + rng() % buf.size();
        const std::size_t n = reader.read_at(std::span(buf.data(), len), o);
        ASSERT_EQ(n, std::min<std::uint64_t>(len, data.size() - o));
        ASSERT_EQ(std::memcmp(buf.data(), data.data() + o, n), 0) << o;
    }
    // Streaming still works on the same reader, and after it random access.
    std::uint64_t total = 0;
    reader.read(512, 1 << 20, [&](std::uint64_t at, std::span<const std::byte> piece) {
        EXPECT_EQ(std::memcmp(piece.data(), data.data() + at, piece.size()), 0) << at;
        total += piece.size();
    });
    EXPECT_EQ(total, 1u << 20);
    ASSERT_EQ(reader.read_at(std::span(buf.data(), 100), 70000), 100u);
    EXPECT_EQ(std::memcmp(buf.data(), data.data() + 70000, 100), 0);
}

TEST_F(ImageReaderTest, RandomAccessOfAFileWithAnUnalignedEnd) {
    data.resize(data.size() - 100);
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(data.data(), std::streamsize(data.size()));
    ImageReader reader(path, {65536, 4, true});
    std::vector<std::byte> buf(5000);
    const std::uint64_t at = data.size() - 3000;
    ASSERT_EQ(reader.read_at(buf, at), 3000u);
    EXPECT_EQ(std::memcmp(buf.data(), data.data() + at, 3000), 0);
}

TEST_F(ImageReaderTest, HandsOverWholeBlocks) {
    const std::size_t block = 1u << 20;
    ImageReader reader(path, {static_cast<std::uint32_t>(block), 3, true});
    // Whole blocks, in order, all kept: the reader never writes into a
    // buffer it gave away (its later reads and read-ahead go elsewhere).
    std::vector<std::pair<std::size_t, ImageReader::Buffer>> taken;
    ImageReader::Buffer buf;
    for (std::uint64_t off = 0; off < data.size(); off += block) {
        const std::size_t n = reader.take_block(off, block, buf);
        ASSERT_EQ(n, std::min<std::uint64_t>(block, data.size() - off));
        ASSERT_TRUE(buf);
        taken.emplace_back(n, std::move(buf));
    }
    ASSERT_EQ(taken.size(), 4u);
    for (std::size_t i = 0; i < taken.size(); ++i)
        EXPECT_EQ(std::memcmp(taken[i].second.get(), data.data() + i * block, taken[i].first), 0)
            << i;
    // The same block twice: read again, not a buffer already given away.
    ASSERT_EQ(reader.take_block(block, block, buf), block);
    ImageReader::Buffer again;
    ASSERT_EQ(reader.take_block(block, block, again), block);
    EXPECT_NE(buf.get(), again.get());
    EXPECT_EQ(std::memcmp(again.get(), data.data() + block, block), 0);
    // And read_at() still finds it.
    std::vector<std::byte> copy(block);
    ASSERT_EQ(reader.read_at(copy, block), block);
    EXPECT_EQ(std::memcmp(copy.data(), data.data() + block, block), 0);
    // Anything but a whole block is left to read_at(): not aligned, too
    // short, longer than a block, past the end.
    EXPECT_EQ(reader.take_block(4096, block, buf), 0u);
    EXPECT_FALSE(buf);
    EXPECT_EQ(reader.take_block(0, block - 1, buf), 0u);
    EXPECT_FALSE(buf);
    EXPECT_EQ(reader.take_block(0, 2 * block, buf), 0u);
    EXPECT_FALSE(buf);
    EXPECT_EQ(reader.take_block(4 * block, block, buf), 0u);
    EXPECT_FALSE(buf);
}

TEST_F(ImageReaderTest, InvalidateReadsAgain) {
    ImageReader reader(path, {65536, 2, true});
    std::vector<std::byte> buf(4096);
    ASSERT_EQ(reader.read_at(buf, 8192), 4096u); // cached now
    {
        std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
        f.seekp(8192);
        f.write("XYZ", 3);
    }
    reader.invalidate();
    ASSERT_EQ(reader.read_at(buf, 8192), 4096u);
    EXPECT_EQ(std::memcmp(buf.data(), "XYZ", 3), 0);
}

TEST_F(ImageReaderTest, AFailedReadNamesTheOffsetAndIsTriedAgain) {
    ImageReader reader(path, {65536, 4, true});
    const auto full = data.size();
    ASSERT_EQ(::truncate(path.c_str(), 65536), 0); // shrinks under the reader
    std::vector<std::byte> buf(4096);
    try {
        reader.read_at(buf, 1 << 20);
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), EIO);
        EXPECT_NE(std::string(e.what()).find("read " + path + " at offset 1048576"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(reader.read(0, full, [](auto, auto) {}), Error);
    // Back to its size: the same reads work, nothing failed is remembered.
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(data.data(), std::streamsize(data.size()));
    ASSERT_EQ(reader.read_at(buf, 1 << 20), 4096u);
    EXPECT_EQ(std::memcmp(buf.data(), data.data() + (1 << 20), 4096), 0);
    std::uint64_t total = 0;
    reader.read(0, full, [&](auto, auto piece) { total += piece.size(); });
    EXPECT_EQ(total, full);
}

TEST(ImageReaderAlign, BlocksAndRanges) {
    static_assert(align_down(4097, 4096) == 4096);
    static_assert(align_up(4097, 4096) == 8192);
    static_assert(align_up(0, 512) == 0);
    constexpr auto mib = 1ull << 20;
    auto s = blocks_covering(mib - 1, 2, mib);
    EXPECT_EQ(s.first, 0u);
    EXPECT_EQ(s.last, 1u);
    s = blocks_covering(3 * mib, mib, mib);
    EXPECT_EQ(s.first, 3u);
    EXPECT_EQ(s.last, 3u);
    // The last block of a 2.5 MiB + 100 bytes source, logical blocks of 512.
    const std::uint64_t size = 2 * mib + mib / 2 + 100;
    auto r = block_range(2, mib, size, 512);
    EXPECT_EQ(r.offset, 2 * mib);
    EXPECT_EQ(r.length, mib / 2 + 512);
    EXPECT_EQ(block_range(3, mib, size, 512).length, 0u);
    EXPECT_EQ(clamp_length(size - 10, 4096, size), 10u);
    EXPECT_EQ(clamp_length(size, 4096, size), 0u);
    EXPECT_EQ(clamp_length(0, 4096, size), 4096u);
}

TEST(ImageReader, MissingFileNamesThePath) {
    try {
        ImageReader("/var/tmp/blksnap-no-such-image", {});
        FAIL();
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ENOENT);
        EXPECT_STREQ(e.what(), "open /var/tmp/blksnap-no-such-image: No such file or directory");
    }
}

} // namespace
} // namespace blksnap::test
