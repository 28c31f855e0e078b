/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __BLKSNAP_CTL_H
#define __BLKSNAP_CTL_H

int ctl_init(void);
void ctl_done(void);

#endif /* __BLKSNAP_CTL_H */
