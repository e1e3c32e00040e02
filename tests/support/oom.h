/* SPDX-License-Identifier: Apache-2.0 */
/* oom.h: allocation failures on demand, for the tests that make every allocation of an
 * operation fail in turn. Link oom.c with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup: every malloc, calloc, realloc
 * and strdup of the program (libnaftikod included) goes through it. */
#ifndef NK_TEST_OOM_H
#define NK_TEST_OOM_H
#include <stdbool.h>
#include <stddef.h>

extern long nk_oom_countdown; /* allocations left before one fails (0: the next); -1: never */
extern long nk_oom_calls;     /* allocations seen; the test resets it */
extern bool nk_oom_failed;    /* an allocation was made to fail since nk_oom_arm() */

/* The n-th allocation from now fails (n counted from 0), once; n < 0: none. */
void nk_oom_arm(long n);
void nk_oom_disarm(void);

void *__wrap_malloc(size_t n); /* for jansson's json_set_alloc_funcs() */
void *__real_malloc(size_t n); /* an allocation that never fails */
#endif
