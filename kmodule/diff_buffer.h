/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_DIFF_BUFFER_H
#define __BLKSNAP_DIFF_BUFFER_H

#include <linux/bio.h>
#include <linux/list.h>
#include <linux/spinlock.h>
#include <linux/uio.h>
#include <linux/wait.h>

/**
 * struct diff_buffer - the old data of one chunk, in pages.
 * @link:     entry in &diff_buffer_pool.free.
 * @nr_pages: pages in @bvec.
 * @bvec:     one page each.
 */
struct diff_buffer {
	struct list_head link;
	unsigned int nr_pages;
	struct bio_vec bvec[];
};

/* Buffers a pool keeps whatever free_diff_buffer_pool_size says. */
#define DIFF_BUFFER_RESERVE 1

/**
 * struct diff_buffer_pool - the buffers of one chunk size, kept for reuse.
 * @lock:     protects @free and @count.
 * @free:     the free buffers.
 * @count:    buffers in @free; at most free_diff_buffer_pool_size, or
 *            DIFF_BUFFER_RESERVE if more.
 * @nr_pages: pages per buffer.
 * @wait:     diff_buffer_get() waits here for a buffer when memory is short.
 */
struct diff_buffer_pool {
	spinlock_t lock; /* see @lock above */
	struct list_head free;
	unsigned int count;
	unsigned int nr_pages;
	wait_queue_head_t wait;
};

int diff_buffer_pool_init(struct diff_buffer_pool *pool, size_t bytes);
void diff_buffer_pool_destroy(struct diff_buffer_pool *pool);
struct diff_buffer *diff_buffer_get(struct diff_buffer_pool *pool);
void diff_buffer_put(struct diff_buffer_pool *pool, struct diff_buffer *buf);
void diff_buffer_iter(struct diff_buffer *buf, unsigned int direction,
		      size_t offset, size_t len, struct iov_iter *iter);
void diff_buffer_copy_bio(struct diff_buffer *buf, size_t offset,
			  struct bio *bio, struct bvec_iter *iter, size_t len,
			  bool to_bio);

#endif /* __BLKSNAP_DIFF_BUFFER_H */
