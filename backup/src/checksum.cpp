#include <blksnap/backup/checksum.hpp>

#include <blksnap/backup/readback.hpp>
#include <blksnap/error.hpp>
#include <cstdio>

#include <algorithm>
#include <cerrno>
#include <xxhash.h>

namespace blksnap::backup {

std::string hex64(std::uint64_t v) {
    char text[20];
    std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(v));
    return text;
}

namespace fs = std::filesystem;

void Xxh64::Free::operator()(XXH64_state_s* s) const noexcept {
    XXH64_freeState(s);
}

Xxh64::Xxh64() : state_(XXH64_createState()) {
    if (!state_)
        throw Error(ENOMEM, "xxh64 state");
    XXH64_reset(state_.get(), 0);
}

void Xxh64::reset() {
    XXH64_reset(state_.get(), 0);
}

void Xxh64::update(std::span<const std::byte> data) {
    XXH64_update(state_.get(), data.data(), data.size());
}

std::uint64_t Xxh64::digest() const {
    return XXH64_digest(state_.get());
}

BlockSums::BlockSums(std::vector<std::uint64_t> sums, std::uint32_t block_size, std::uint64_t size)
    : sums_(std::move(sums)), block_size_(block_size), size_(size) {}

void BlockSums::written(std::uint64_t offset, std::span<const std::byte> data) {
    while (!data.empty()) {
        const std::uint64_t b = offset / block_size_;
        const std::uint64_t start = b * block_size_;
        const std::uint64_t end = std::min(start + block_size_, size_);
        if (b >= sums_.size() || end <= offset)
            return; // past the image: nothing to keep
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(data.size(), end - offset));
        if (block_ != b || offset != start + fed_) {
            if (block_)
                reread_.push_back(*block_); // left before its end
            block_.reset();
            if (offset != start) {
                reread_.push_back(b); // begun after its start
            } else {
                block_ = b;
                fed_ = 0;
                hash_.reset();
            }
        }
        if (block_) {
            hash_.update(data.first(n));
            fed_ += n;
            if (start + fed_ == end) {
                sums_[b] = hash_.digest();
                block_.reset();
            }
        }
        offset += n;
        data = data.subspan(n);
    }
}

std::vector<std::uint64_t> BlockSums::finish(const fs::path& file) {
    if (block_)
        reread_.push_back(*block_);
    block_.reset();
    std::sort(reread_.begin(), reread_.end());
    reread_.erase(std::unique(reread_.begin(), reread_.end()), reread_.end());
    if (!reread_.empty()) {
        const auto sums = block_sums(file, block_size_, reread_);
        for (std::size_t i = 0; i < reread_.size(); ++i)
            sums_[reread_[i]] = sums[i];
        reread_.clear();
    }
    return std::move(sums_);
}

} // namespace blksnap::backup
