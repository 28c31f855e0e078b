/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_IMAGE_H
#define __BLKSNAP_IMAGE_H

struct diff_area;
struct gendisk;

/**
 * struct image - the block device showing a device as it was at the take.
 * @disk: the disk, named blksnap-image_MAJ:MIN after the original.
 * @area: the original's copy-on-write state.
 */
struct image {
	struct gendisk *disk;
	struct diff_area *area;
};

int image_init(void);
void image_done(void);
struct image *image_create(struct diff_area *area);
void image_free(struct image *image);

#endif /* __BLKSNAP_IMAGE_H */
