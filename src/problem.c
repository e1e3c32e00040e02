/* SPDX-License-Identifier: Apache-2.0 */
/* problem.c: RFC 9457 problem documents, built with jansson (one builder for every body). */
#include "naftikod/problem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/common.h"

const char *nk_problem_title(unsigned status)
{
    switch (status) {
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

json_t *nk_json_text(const char *s)
{
    size_t n = strlen(s), cap;
    char *fixed;
    json_t *v = json_stringn(s, n);

    if (v != NULL || n > (SIZE_MAX - 1) / 3)
        return v;
    /* json_stringn refuses invalid UTF-8: each bad byte grows to at most 3 bytes */
    cap = 3 * n + 1;
    fixed = malloc(cap);
    if (fixed == NULL)
        return NULL;
    n = nk_utf8_copy(fixed, cap, s, n);
    v = json_stringn(fixed, n);
    free(fixed);
    return v;
}

/* The members that carry the status: type, title, status. New reference or NULL (OOM). */
static json_t *problem_base(unsigned status, const char *title)
{
    json_t *p = json_object();

    if (p == NULL)
        return NULL;
    if (json_object_set_new(p, "type", json_string("about:blank")) != 0 ||
        json_object_set_new(p, "title",
                            nk_json_text(title != NULL ? title : nk_problem_title(status))) != 0 ||
        json_object_set_new(p, "status", json_integer(status)) != 0) {
        json_decref(p);
        return NULL;
    }
    return p;
}

char *nk_problem_new(unsigned status, const char *title, const char *detail, json_t *extra)
{
    json_t *p = problem_base(status, title), *v;
    const char *key;
    char *text = NULL;
    bool full = true;

    if (p == NULL)
        goto out;
    if (detail != NULL && json_object_set_new(p, "detail", nk_json_text(detail)) != 0)
        full = false;
    if (full && json_is_object(extra)) {
        json_object_foreach(extra, key, v)
        {
            if (json_object_get(p, key) == NULL && json_object_set(p, key, v) != 0) {
                full = false;
                break;
            }
        }
    }
    if (full)
        text = json_dumps(p, JSON_COMPACT);
    if (text == NULL) {
        /* short of memory: the members that carry the status are enough */
        json_decref(p);
        p = problem_base(status, title);
        if (p != NULL)
            text = json_dumps(p, JSON_COMPACT);
    }
out:
    json_decref(p);
    return text;
}
