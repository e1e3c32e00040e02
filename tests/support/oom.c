/* SPDX-License-Identifier: Apache-2.0 */
/* oom.c: the wrapped allocator of oom.h. */
#include "oom.h"

#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t sz);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_calloc(size_t n, size_t sz);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

long nk_oom_countdown = -1;
long nk_oom_calls;
bool nk_oom_failed;

void nk_oom_arm(long n)
{
    nk_oom_failed = false;
    nk_oom_countdown = n;
}

void nk_oom_disarm(void)
{
    nk_oom_countdown = -1;
}

static bool fail_now(void)
{
    nk_oom_calls++;
    if (nk_oom_countdown < 0)
        return false;
    if (nk_oom_countdown-- == 0) {
        nk_oom_failed = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t sz)
{
    return fail_now() ? NULL : __real_calloc(n, sz);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fail_now() ? NULL : __real_strdup(s);
}
