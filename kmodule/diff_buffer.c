// SPDX-License-Identifier: GPL-2.0
/*
 * Chunk buffers: the old data of a chunk between copy-on-write and the
 * difference storage, held in pages so that it is read from the original
 * and written to the storage without copies. Freed buffers are kept for
 * reuse, up to free_diff_buffer_pool_size per device, and never fewer than
 * DIFF_BUFFER_RESERVE: copy-on-write may run for the writeback that is to
 * free memory, so when no memory is left it waits for a buffer of the pool
 * rather than for the allocator.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "diff_buffer.h"
#include "params.h"

static void diff_buffer_free(struct diff_buffer *buf)
{
	unsigned int i;

	for (i = 0; i < buf->nr_pages; i++)
		__free_page(buf->bvec[i].bv_page);
	kvfree(buf);
}

/* A new zeroed buffer of @nr_pages pages, or NULL. */
static struct diff_buffer *diff_buffer_alloc(unsigned int nr_pages, gfp_t gfp)
{
	struct diff_buffer *buf;
	unsigned int i;

	/* 16 bytes a page: 256 KiB for a 64 MiB chunk, vmalloc may serve. */
	buf = kvzalloc(struct_size(buf, bvec, nr_pages), gfp);
	if (!buf)
		return NULL;
	for (i = 0; i < nr_pages; i++) {
		struct page *page = alloc_page(gfp | __GFP_ZERO);

		if (!page) {
			buf->nr_pages = i;
			diff_buffer_free(buf);
			return NULL;
		}
		bvec_set_page(&buf->bvec[i], page, PAGE_SIZE, 0);
	}
	buf->nr_pages = nr_pages;
	return buf;
}

/**
 * diff_buffer_pool_destroy() - free the pool's buffers.
 * @pool: the pool; no buffer is in use any more.
 */
void diff_buffer_pool_destroy(struct diff_buffer_pool *pool)
{
	struct diff_buffer *buf, *tmp;

	list_for_each_entry_safe(buf, tmp, &pool->free, link)
		diff_buffer_free(buf);
	INIT_LIST_HEAD(&pool->free);
	pool->count = 0;
}

/**
 * diff_buffer_pool_init() - a pool holding its reserve.
 * @pool:  the pool.
 * @bytes: size of its buffers.
 *
 * Context: process context; allocates DIFF_BUFFER_RESERVE buffers with
 * GFP_KERNEL.
 * Return: 0 or -ENOMEM (nothing is left allocated then).
 */
int diff_buffer_pool_init(struct diff_buffer_pool *pool, size_t bytes)
{
	struct diff_buffer *buf;
	unsigned int i;

	spin_lock_init(&pool->lock);
	INIT_LIST_HEAD(&pool->free);
	pool->count = 0;
	pool->nr_pages = DIV_ROUND_UP(bytes, PAGE_SIZE);
	init_waitqueue_head(&pool->wait);
	for (i = 0; i < DIFF_BUFFER_RESERVE; i++) {
		buf = diff_buffer_alloc(pool->nr_pages, GFP_KERNEL);
		if (!buf) {
			diff_buffer_pool_destroy(pool);
			return -ENOMEM;
		}
		list_add(&buf->link, &pool->free);
		pool->count++;
	}
	return 0;
}

/* A free buffer of the pool, or NULL. */
static struct diff_buffer *diff_buffer_take(struct diff_buffer_pool *pool)
{
	struct diff_buffer *buf;

	spin_lock(&pool->lock);
	buf = list_first_entry_or_null(&pool->free, struct diff_buffer, link);
	if (buf) {
		list_del(&buf->link);
		pool->count--;
	}
	spin_unlock(&pool->lock);
	return buf;
}

/**
 * diff_buffer_get() - a buffer from the pool, or a new zeroed one.
 * @pool: the pool.
 *
 * A new buffer is allocated only where memory is at hand (GFP_NOIO, no
 * retrying). Otherwise this waits until a buffer in use is put back: the
 * pool always owns one at least (its reserve), and buffers in use go back
 * once stored, which needs no buffer.
 *
 * Context: process context; may sleep.
 * Return: the buffer; never NULL.
 */
struct diff_buffer *diff_buffer_get(struct diff_buffer_pool *pool)
{
	struct diff_buffer *buf;

	buf = diff_buffer_take(pool);
	if (buf)
		return buf;
	buf = diff_buffer_alloc(pool->nr_pages,
				GFP_NOIO | __GFP_NORETRY | __GFP_NOWARN);
	if (buf)
		return buf;
	wait_event(pool->wait, (buf = diff_buffer_take(pool)));
	return buf;
}

/**
 * diff_buffer_put() - give a buffer back.
 * @pool: the pool it came from.
 * @buf:  the buffer, or NULL.
 *
 * It is kept for reuse while the pool has fewer than
 * free_diff_buffer_pool_size free buffers, or fewer than its reserve.
 */
void diff_buffer_put(struct diff_buffer_pool *pool, struct diff_buffer *buf)
{
	unsigned int keep = max_t(unsigned int,
				  READ_ONCE(free_diff_buffer_pool_size),
				  DIFF_BUFFER_RESERVE);

	if (!buf)
		return;
	spin_lock(&pool->lock);
	if (pool->count < keep) {
		list_add(&buf->link, &pool->free);
		pool->count++;
		buf = NULL;
	}
	spin_unlock(&pool->lock);
	if (buf)
		diff_buffer_free(buf);
	else if (wq_has_sleeper(&pool->wait))
		wake_up(&pool->wait);
}

/**
 * diff_buffer_iter() - @len bytes of a buffer from @offset as an iov_iter.
 * @buf:       the buffer.
 * @direction: ITER_SOURCE or ITER_DEST.
 * @offset:    byte offset in the buffer.
 * @len:       bytes.
 * @iter:      receives the iterator.
 */
void diff_buffer_iter(struct diff_buffer *buf, unsigned int direction,
		      size_t offset, size_t len, struct iov_iter *iter)
{
	iov_iter_bvec(iter, direction, buf->bvec, buf->nr_pages,
		      offset + len);
	iov_iter_advance(iter, offset);
}

/**
 * diff_buffer_copy_bio() - copy between a buffer and a bio.
 * @buf:    the buffer.
 * @offset: byte offset in the buffer.
 * @bio:    the bio.
 * @iter:   where in @bio; advanced by @len.
 * @len:    bytes.
 * @to_bio: copy from the buffer into the bio, else the other way.
 */
void diff_buffer_copy_bio(struct diff_buffer *buf, size_t offset,
			  struct bio *bio, struct bvec_iter *iter, size_t len,
			  bool to_bio)
{
	while (len) {
		struct bio_vec bv = bio_iter_iovec(bio, *iter);
		struct bio_vec *page = &buf->bvec[offset / PAGE_SIZE];
		size_t in_page = offset % PAGE_SIZE;
		size_t n = min3(len, (size_t)bv.bv_len, PAGE_SIZE - in_page);

		if (to_bio)
			memcpy_page(bv.bv_page, bv.bv_offset, page->bv_page,
				    in_page, n);
		else
			memcpy_page(page->bv_page, in_page, bv.bv_page,
				    bv.bv_offset, n);
		offset += n;
		len -= n;
		bio_advance_iter_single(bio, iter, n);
	}
}
