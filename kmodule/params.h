/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_PARAMS_H
#define __BLKSNAP_PARAMS_H

/* Module parameters, defined in main.c; see blksnap(4) for their meaning. */
extern unsigned int tracking_block_minimum_shift;
extern unsigned int tracking_block_maximum_shift;
extern unsigned int tracking_block_maximum_count;
extern unsigned int chunk_minimum_shift;
extern unsigned int chunk_maximum_shift;
extern unsigned int chunk_maximum_count_shift;
extern unsigned int chunk_maximum_in_queue;
extern unsigned int free_diff_buffer_pool_size;
extern unsigned int diff_storage_minimum;

/*
 * Largest chunk: 2^26 bytes (64 MiB). A chunk is the unit of memory of
 * copy-on-write: the first write to it waits while all of it is read into
 * a buffer allocated in the write path, up to chunk_maximum_in_queue of
 * them wait for storing per device, and each is written to the storage in
 * one request (which may not exceed MAX_RW_COUNT, 2 GiB less a page).
 */
#define CHUNK_SHIFT_MAX 26
/* Largest chunk_maximum_in_queue: far more than four store workers drain. */
#define CHUNK_IN_QUEUE_MAX 1024

#endif /* __BLKSNAP_PARAMS_H */
