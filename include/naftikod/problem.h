/* SPDX-License-Identifier: Apache-2.0 */
/* problem.h: the one builder of RFC 9457 problem documents (application/problem+json). */
#ifndef NAFTIKOD_PROBLEM_H
#define NAFTIKOD_PROBLEM_H

#include <jansson.h>

/* The HTTP reason phrase of status ("Error" for one without a phrase here); static text. */
const char *nk_problem_title(unsigned status);

/* A problem document as compact JSON text:
 *   {"type":"about:blank","title":T,"status":status,"detail":detail, ...extra}
 * T is title, or nk_problem_title(status) when title is NULL; detail NULL leaves "detail" out.
 * Every text is escaped by jansson; bytes of title or detail that are not UTF-8 become U+FFFD.
 * extra (borrowed, may be NULL) is an object whose members are added (they do not replace
 * type, title, status or detail). When memory runs short the document keeps type, title and
 * status only. Returns malloc'd text the caller frees with free(), or NULL when even that
 * cannot be built. Thread-safe. */
char *nk_problem_new(unsigned status, const char *title, const char *detail, json_t *extra);

/* s as a JSON string even when it is not UTF-8 (each byte that does not start a well-formed
 * character becomes U+FFFD): error texts carry caller and upstream bytes, and jansson refuses
 * invalid UTF-8. New reference, or NULL when memory runs short. */
json_t *nk_json_text(const char *s);

#endif
