/* SPDX-License-Identifier: Apache-2.0 */
/* test_mcp.c: the MCP engine without HTTP: handshake, negotiation, sessions, pagination, both
 * eras, header checks, tool results, stdio framing; plus SHA-256/HMAC/base64url vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/mcp_core.h"
#include "naftikod/sha256.h"

/* ---- fixtures ----------------------------------------------------------------------------- */

#define N_MANY 250

struct captured {
    int calls;
    unsigned status;
    char *body;
    json_t *json;
    char sid[NK_MCP_SESSION_ID_MAX];
    const char *allow;
    bool stream;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void capture(void *ud, struct nk_mcp_reply *r)
{
    struct captured *c = ud;

    pthread_mutex_lock(&c->mu);
    c->calls++;
    c->status = r->status;
    c->body = r->body;
    r->body = NULL;
    c->json = c->body != NULL ? json_loads(c->body, 0, NULL) : NULL;
    memcpy(c->sid, r->session_id, sizeof(c->sid));
    c->allow = r->allow;
    c->stream = r->stream;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void cap_init(struct captured *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
}

static void cap_cleanup(struct captured *c)
{
    free(c->body);
    json_decref(c->json);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* Fake invocations, chosen by tool name. */
struct pending_call {
    nk_mcp_done_fn done;
    void *ud;
};
static struct pending_call deferred;
static json_t *last_args;
static int n_calls;            /* fake_call invocations */
static uint64_t cancelled_tag; /* the last tag fake_cancel was given */
static int n_cancels;

static void fake_cancel(void *ud, uint64_t tag)
{
    (void)ud;
    cancelled_tag = tag;
    n_cancels++;
}

static enum nk_rc fake_call(void *ud, const struct nk_exposed *tool, json_t *args,
                            nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct nk_result r;

    (void)ud;
    n_calls++;
    json_decref(last_args);
    last_args = json_deep_copy(args);
    memset(&r, 0, sizeof(r));
    if (strcmp(tool->name, "bad-args") == 0) {
        nk_error_set(err, "parameter 'id' must be a string, got 5");
        return NK_ERR_INVALID;
    }
    if (strcmp(tool->name, "later") == 0) {
        deferred.done = done;
        deferred.ud = done_ud;
        return NK_OK;
    }
    if (strcmp(tool->name, "scalar") == 0) {
        r.kind = NK_RES_OK;
        r.json = json_integer(5);
    } else if (strcmp(tool->name, "upstream-400") == 0) {
        r.kind = NK_RES_UPSTREAM_ERROR;
        r.status = 400;
        r.json = json_pack("{s:s}", "error", "token name cannot be empty");
        snprintf(r.message, sizeof(r.message), "upstream answered 400: token name cannot be empty");
    } else if (strcmp(tool->name, "down") == 0) {
        r.kind = NK_RES_UNREACHABLE;
        snprintf(r.message, sizeof(r.message), "upstream unreachable: connection refused");
    } else if (strcmp(tool->name, "raw") == 0) {
        /* passed through: the engine may take r.raw (as nk_mcp_invoke frees what is left) */
        r.kind = NK_RES_OK;
        r.raw_is_output = true;
        r.raw = strdup("{\"n\": [1, 2]}");
        assert_non_null(r.raw);
        r.raw_len = strlen(r.raw);
        done(done_ud, &r);
        free(r.raw);
        return NK_OK;
    } else if (strcmp(tool->name, "bad-utf8") == 0) {
        /* An upstream message holding a byte that is no UTF-8 (invoke.c repairs it; the engine
         * must survive one that was not). */
        r.kind = NK_RES_UPSTREAM_ERROR;
        snprintf(r.message, sizeof(r.message), "upstream answered 400: bad \xff byte");
    } else {
        r.kind = NK_RES_OK;
        r.json = json_pack("{s:s, s:i}", "tool", tool->name, "n", 1);
    }
    done(done_ud, &r);
    json_decref(r.json);
    return NK_OK;
}

static char id_name[] = "id", id_desc[] = "token id", revoked_name[] = "revoked";
static struct nk_arg id_arg = {.name = id_name,
                               .in = NK_IN_BODY,
                               .type = NK_TYPE_STRING,
                               .required = true,
                               .description = id_desc};
static struct nk_arg revoked_arg = {
    .name = revoked_name, .in = NK_IN_BODY, .type = NK_TYPE_BOOLEAN};

static struct nk_exposed tools[8];
static struct nk_adapter adapter;
static struct nk_exposed many[N_MANY];
static char many_names[N_MANY][16];
static struct nk_adapter many_adapter;

static void build_tables(void)
{
    const char *names[] = {"get",   "scalar", "upstream-400", "bad-args",
                           "later", "down",   "bad-utf8",     "raw"};
    size_t i;

    memset(tools, 0, sizeof(tools));
    for (i = 0; i < 8; i++) {
        tools[i].name = (char *)names[i];
        tools[i].description = (char *)"a test tool";
    }
    tools[0].title = (char *)"Get a token";
    tools[0].args = &id_arg;
    tools[0].n_args = 1;
    tools[0].hints.read_only = true;
    tools[0].hints.idempotent = true;
    tools[1].args = &revoked_arg;
    tools[1].n_args = 1;
    tools[2].hints.destructive = true;
    tools[2].hints.open_world = true;
    memset(&adapter, 0, sizeof(adapter));
    adapter.type = NK_ADAPTER_MCP;
    adapter.ns = (char *)"test-mcp";
    adapter.description = (char *)"Test tools for the engine.";
    adapter.ops = tools;
    adapter.n_ops = 8;
    for (i = 0; i < N_MANY; i++) {
        snprintf(many_names[i], sizeof(many_names[i]), "tool-%03zu", i);
        memset(&many[i], 0, sizeof(many[i]));
        many[i].name = many_names[i];
        many[i].description = (char *)"many";
    }
    memset(&many_adapter, 0, sizeof(many_adapter));
    many_adapter.type = NK_ADAPTER_MCP;
    many_adapter.ns = (char *)"many";
    many_adapter.ops = many;
    many_adapter.n_ops = N_MANY;
}

static struct nk_mcp *engine;
static struct nk_mcp_backend backend;

static int setup(void **state)
{
    static const char *const extra[] = {"mcp.example.test"};
    struct nk_mcp_options o;

    (void)state;
    build_tables();
    memset(&o, 0, sizeof(o));
    o.session_key = (const unsigned char *)"test-key-not-a-secret";
    o.session_key_len = strlen("test-key-not-a-secret");
    o.allowed_hosts = extra;
    o.n_allowed_hosts = 1;
    if (nk_mcp_new(&o, &engine, NULL) != NK_OK)
        return -1;
    memset(&backend, 0, sizeof(backend));
    backend.adapter = &adapter;
    backend.call = fake_call;
    backend.cancel = fake_cancel;
    n_calls = 0;
    n_cancels = 0;
    cancelled_tag = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    nk_mcp_free(engine);
    engine = NULL;
    json_decref(last_args);
    last_args = NULL;
    return 0;
}

/* One HTTP exchange; headers given as name/value pairs ending with NULL. */
static void http(struct captured *c, const char *method, const char *body, ...)
{
    struct nk_mcp_http_in in;
    va_list ap;
    const char *name;

    memset(&in, 0, sizeof(in));
    in.method = method;
    in.host = "127.0.0.1:9090";
    in.body = body;
    in.body_len = body != NULL ? strlen(body) : 0;
    va_start(ap, body);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);

        if (strcmp(name, "Host") == 0)
            in.host = v;
        else if (strcmp(name, "Origin") == 0)
            in.origin = v;
        else if (strcmp(name, "Mcp-Session-Id") == 0)
            in.session_id = v;
        else if (strcmp(name, "MCP-Protocol-Version") == 0)
            in.protocol_version = v;
        else if (strcmp(name, "Mcp-Method") == 0)
            in.mcp_method = v;
        else if (strcmp(name, "Mcp-Name") == 0)
            in.mcp_name = v;
        else if (strcmp(name, "Accept") == 0)
            in.accept = v;
        else if (strcmp(name, "caller") == 0) /* what inbound authentication found */
            in.caller = v;
    }
    va_end(ap);
    cap_init(c);
    nk_mcp_http(engine, &backend, &in, capture, c);
}

static const char init_body[] =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";

/* Initialize and return a session id (caller storage). */
static void open_session(char sid[NK_MCP_SESSION_ID_MAX])
{
    struct captured c;

    http(&c, "POST", init_body, NULL);
    assert_int_equal(c.status, 200);
    assert_true(c.sid[0] != '\0');
    memcpy(sid, c.sid, NK_MCP_SESSION_ID_MAX);
    cap_cleanup(&c);
}

static json_t *result_of(struct captured *c)
{
    json_t *r = json_object_get(c->json, "result");

    assert_non_null(r);
    return r;
}

static int error_code(struct captured *c)
{
    json_t *e = json_object_get(c->json, "error");

    assert_non_null(e);
    return (int)json_integer_value(json_object_get(e, "code"));
}

/* ---- crypto helpers ----------------------------------------------------------------------- */

static void hex(const unsigned char *d, size_t n, char *out)
{
    size_t i;

    for (i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha256_vectors(void **state)
{
    unsigned char d[NK_SHA256_LEN], key[131];
    char h[65];
    struct nk_sha256 c;
    size_t i;

    (void)state;
    nk_sha256("", 0, d);
    hex(d, 32, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    nk_sha256("abc", 3, d);
    hex(d, 32, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    nk_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    hex(d, 32, h);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* One million 'a', fed in uneven pieces. */
    nk_sha256_init(&c);
    memset(key, 'a', 97);
    for (i = 0; i < 1000000;) {
        size_t take = 1000000 - i < 97 ? 1000000 - i : 97;

        nk_sha256_update(&c, key, take);
        i += take;
    }
    nk_sha256_final(&c, d);
    hex(d, 32, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* RFC 4231 test cases 1 and 6. */
    memset(key, 0x0b, 20);
    nk_hmac_sha256(key, 20, "Hi There", 8, d);
    hex(d, 32, h);
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    memset(key, 0xaa, 131);
    nk_hmac_sha256(key, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54, d);
    hex(d, 32, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* The pads of the last key are kept: keys that alternate, or repeat, give the same answers
     * (cases 2, 1, 1, 2). */
    for (i = 0; i < 4; i++) {
        if (i == 0 || i == 3) {
            nk_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
            hex(d, 32, h);
            assert_string_equal(h,
                                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        } else {
            memset(key, 0x0b, 20);
            nk_hmac_sha256(key, 20, "Hi There", 8, d);
            hex(d, 32, h);
            assert_string_equal(h,
                                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        }
    }
}

static void test_b64url(void **state)
{
    unsigned char in[40], out[40];
    char text[64];
    size_t len, n;

    (void)state;
    for (len = 0; len <= sizeof(in); len++) {
        for (n = 0; n < len; n++)
            in[n] = (unsigned char)(n * 37 + 250);
        n = nk_b64url_encode(in, len, text);
        assert_int_equal(n, nk_b64url_len(len));
        assert_int_equal(nk_b64url_decode(text, n, out, sizeof(out)), len);
        assert_memory_equal(in, out, len);
    }
    assert_string_equal((nk_b64url_encode("\xfb\xff", 2, text), text), "-_8");
    assert_int_equal(nk_b64url_decode("a+b/", 4, out, sizeof(out)), (size_t)-1);
    assert_int_equal(nk_b64url_decode("-_9", 3, out, sizeof(out)), (size_t)-1); /* bits */
    assert_int_equal(nk_b64url_decode("a", 1, out, sizeof(out)), (size_t)-1);
}

/* ---- handshake era ------------------------------------------------------------------------ */

static void test_initialize(void **state)
{
    struct captured c;
    json_t *r;
    const char *p;

    (void)state;
    http(&c, "POST", init_body, NULL);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 200);
    r = result_of(&c);
    assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")), "2025-06-18");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "serverInfo"), "name")), "naftikod");
    /* HTTP: the GET stream carries notifications/tools/list_changed */
    assert_true(json_is_true(json_object_get(
        json_object_get(json_object_get(r, "capabilities"), "tools"), "listChanged")));
    assert_string_equal(json_string_value(json_object_get(r, "instructions")),
                        "Test tools for the engine.");
    assert_true(strlen(c.sid) > 16);
    for (p = c.sid; *p != '\0'; p++)
        assert_true(*p >= 0x21 && *p <= 0x7e);
    cap_cleanup(&c);

    /* Unknown client version: our latest handshake version. */
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"1999-01-01\",\"capabilities\":{}}}",
         NULL);
    r = result_of(&c);
    assert_string_equal(json_string_value(json_object_get(r, "protocolVersion")),
                        NK_MCP_LATEST_HANDSHAKE_VERSION);
    assert_string_equal(json_string_value(json_object_get(c.json, "id")), "a");
    cap_cleanup(&c);

    /* Each supported version is echoed. */
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2024-11-05\",\"capabilities\":{}}}",
         NULL);
    assert_string_equal(json_string_value(json_object_get(result_of(&c), "protocolVersion")),
                        "2024-11-05");
    cap_cleanup(&c);

    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\"}", NULL);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
}

static void test_sessions(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX], other[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    struct nk_mcp *replica = NULL, *stranger = NULL;
    struct nk_mcp_options o;
    static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}";

    (void)state;
    open_session(sid);
    http(&c, "POST", ping, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(json_object_size(result_of(&c)), 0);
    cap_cleanup(&c);

    http(&c, "POST", ping, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 400);
    cap_cleanup(&c);

    http(&c, "POST", ping, "Mcp-Session-Id", "not-a-session", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);

    /* A tampered id fails its MAC. */
    memcpy(other, sid, sizeof(other));
    other[5] = other[5] == 'A' ? 'B' : 'A';
    assert_int_equal(nk_mcp_session_check(engine, other, NULL), NK_MCP_SESSION_INVALID);

    /* Replicas sharing the key accept each other's ids; another key does not. */
    memset(&o, 0, sizeof(o));
    o.session_key = (const unsigned char *)"test-key-not-a-secret";
    o.session_key_len = strlen("test-key-not-a-secret");
    assert_int_equal(nk_mcp_new(&o, &replica, NULL), NK_OK);
    assert_int_equal(nk_mcp_session_check(replica, sid, NULL), NK_MCP_SESSION_VALID);
    assert_int_equal(nk_mcp_new(NULL, &stranger, NULL), NK_OK);
    assert_int_equal(nk_mcp_session_check(stranger, sid, NULL), NK_MCP_SESSION_INVALID);
    nk_mcp_free(replica);
    nk_mcp_free(stranger);

    http(&c, "DELETE", NULL, "Mcp-Session-Id", sid, NULL);
    assert_int_equal(c.status, 204);
    cap_cleanup(&c);
    http(&c, "POST", ping, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    http(&c, "DELETE", NULL, "Mcp-Session-Id", sid, NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    http(&c, "DELETE", NULL, NULL);
    assert_int_equal(c.status, 400);
    cap_cleanup(&c);
}

static void test_ended_ring_bounded(void **state)
{
    struct nk_mcp_options o;
    struct nk_mcp *m = NULL;
    char ids[5][NK_MCP_SESSION_ID_MAX];
    int i;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.max_ended = 4;
    assert_int_equal(nk_mcp_new(&o, &m, NULL), NK_OK);
    for (i = 0; i < 5; i++) {
        assert_int_equal(nk_mcp_session_new(m, NULL, ids[i]), NK_OK);
        assert_int_equal(nk_mcp_session_end(m, ids[i], NULL), NK_MCP_SESSION_VALID);
    }
    /* The oldest was forgotten (documented); the last four are still ended. */
    assert_int_equal(nk_mcp_session_check(m, ids[0], NULL), NK_MCP_SESSION_VALID);
    for (i = 1; i < 5; i++)
        assert_int_equal(nk_mcp_session_check(m, ids[i], NULL), NK_MCP_SESSION_ENDED);
    nk_mcp_free(m);
}

/* Issue 19: a key ring signs with its first key and verifies under any; nk_mcp_set_keys swaps
 * the ring in place (SIGHUP); with no_delete (--replicas) DELETE is 405 and ends nothing. */
static struct nk_mcp *ring_engine(const char *first, const char *second, bool no_delete)
{
    struct nk_mcp_options o;
    struct nk_keyring r;
    struct nk_mcp *m = NULL;

    memset(&o, 0, sizeof(o));
    memset(&r, 0, sizeof(r));
    assert_int_equal(nk_keyring_add(&r, (const unsigned char *)first, strlen(first)), NK_OK);
    if (second != NULL)
        assert_int_equal(nk_keyring_add(&r, (const unsigned char *)second, strlen(second)), NK_OK);
    o.session_keys = &r;
    o.no_delete = no_delete;
    assert_int_equal(nk_mcp_new(&o, &m, NULL), NK_OK);
    return m;
}

static void test_key_ring(void **state)
{
    static const char k1[] = "key-one-not-a-secret", k2[] = "key-two-not-a-secret";
    struct nk_mcp *old = ring_engine(k1, NULL, false), *both = ring_engine(k1, k2, false);
    struct nk_mcp *swapped = ring_engine(k2, k1, false), *fresh = ring_engine(k2, NULL, false);
    struct nk_mcp *saved = engine;
    char id1[NK_MCP_SESSION_ID_MAX], id2[NK_MCP_SESSION_ID_MAX], fp[2][17], fp2[2][17];
    struct nk_keyring r;
    struct captured c;

    (void)state;
    assert_int_equal(nk_mcp_session_new(old, NULL, id1), NK_OK);
    assert_int_equal(nk_mcp_session_new(swapped, NULL, id2), NK_OK);
    /* Mid-rotation every replica verifies ids signed with either key. */
    assert_int_equal(nk_mcp_session_check(both, id1, NULL), NK_MCP_SESSION_VALID);
    assert_int_equal(nk_mcp_session_check(both, id2, NULL), NK_MCP_SESSION_VALID);
    assert_int_equal(nk_mcp_session_check(swapped, id1, NULL), NK_MCP_SESSION_VALID);
    assert_int_equal(nk_mcp_session_check(old, id2, NULL), NK_MCP_SESSION_INVALID);
    assert_int_equal(nk_mcp_session_check(fresh, id1, NULL), NK_MCP_SESSION_INVALID);
    assert_int_equal(nk_mcp_session_check(fresh, id2, NULL), NK_MCP_SESSION_VALID);
    /* The signing key comes first in the fingerprints. */
    assert_int_equal(nk_mcp_key_fingerprints(both, fp, 2), 2);
    assert_int_equal(nk_mcp_key_fingerprints(swapped, fp2, 2), 2);
    assert_string_equal(fp[0], fp2[1]);
    assert_string_equal(fp[1], fp2[0]);
    /* A reload swaps the ring: the old key retired, its ids are refused. */
    memset(&r, 0, sizeof(r));
    nk_keyring_add(&r, (const unsigned char *)k2, strlen(k2));
    nk_mcp_set_keys(old, &r);
    assert_int_equal(nk_mcp_session_check(old, id1, NULL), NK_MCP_SESSION_INVALID);
    assert_int_equal(nk_mcp_session_check(old, id2, NULL), NK_MCP_SESSION_VALID);
    /* An empty ring changes nothing. */
    memset(&r, 0, sizeof(r));
    nk_mcp_set_keys(old, &r);
    assert_int_equal(nk_mcp_session_check(old, id2, NULL), NK_MCP_SESSION_VALID);
    nk_mcp_free(old);
    nk_mcp_free(both);
    nk_mcp_free(swapped);
    nk_mcp_free(fresh);

    /* Upgrade: a replica of before key rings used the whole file ("KEY\n") as its key; one
     * reading the same file as a ring signs and verifies ids as it did, both ways. */
    {
        static const char file[] = "q4tW9zLr2mXc8VbN1sYe7HgP0uJd3KfA\n";
        struct nk_mcp_options o;
        struct nk_mcp *before = NULL, *after = NULL;
        char why[200];

        memset(&o, 0, sizeof(o));
        o.session_key = (const unsigned char *)file;
        o.session_key_len = strlen(file);
        assert_int_equal(nk_mcp_new(&o, &before, NULL), NK_OK);
        assert_int_equal(nk_mcp_session_new(before, NULL, id1), NK_OK);
        assert_int_equal(
            nk_keyring_parse((const unsigned char *)file, strlen(file), &r, why, sizeof(why)),
            NK_OK);
        memset(&o, 0, sizeof(o));
        o.session_keys = &r;
        assert_int_equal(nk_mcp_new(&o, &after, NULL), NK_OK);
        assert_int_equal(nk_mcp_session_check(after, id1, NULL), NK_MCP_SESSION_VALID);
        assert_int_equal(r.n, 1); /* the same key, not a second one */
        assert_int_equal(nk_mcp_session_new(after, NULL, id2), NK_OK);
        assert_int_equal(nk_mcp_session_check(before, id2, NULL), NK_MCP_SESSION_VALID);
        nk_mcp_free(before);
        nk_mcp_free(after);
    }

    /* Replica mode: DELETE is 405 with Allow: POST and the session goes on. */
    engine = ring_engine(k1, NULL, true);
    assert_int_equal(nk_mcp_session_new(engine, NULL, id1), NK_OK);
    http(&c, "DELETE", NULL, "Mcp-Session-Id", id1, NULL);
    assert_int_equal(c.status, 405);
    assert_string_equal(c.allow, "POST");
    cap_cleanup(&c);
    assert_int_equal(nk_mcp_session_check(engine, id1, NULL), NK_MCP_SESSION_VALID);
    nk_mcp_free(engine);
    engine = saved;
}

static void test_notifications_and_responses(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;

    (void)state;
    open_session(sid);
    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
         "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 202);
    assert_null(c.body);
    cap_cleanup(&c);
    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{}}", "Mcp-Session-Id", sid,
         "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 202);
    assert_null(c.body);
    cap_cleanup(&c);
}

static void test_http_framing(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;

    (void)state;
    open_session(sid);
    http(&c, "POST", "{\"jsonrpc\":", "Mcp-Session-Id", sid, NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32700);
    assert_true(json_is_null(json_object_get(c.json, "id")));
    cap_cleanup(&c);

    http(&c, "POST", "{\"id\":1,\"method\":\"ping\"}", "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32600);
    cap_cleanup(&c);

    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}",
         "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32601);
    assert_int_equal(json_integer_value(json_object_get(c.json, "id")), 1);
    cap_cleanup(&c);

    http(&c, "GET", NULL, "Mcp-Session-Id", sid, NULL);
    assert_int_equal(c.status, 405);
    assert_non_null(c.allow);
    assert_non_null(strstr(c.allow, "POST"));
    assert_false(c.stream);
    cap_cleanup(&c);

    /* The server-to-client stream: a valid session and Accept: text/event-stream. */
    http(&c, "GET", NULL, "Mcp-Session-Id", sid, "Accept", "text/event-stream",
         "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, 200);
    assert_true(c.stream);
    assert_null(c.body);
    assert_string_equal(c.sid, sid);
    cap_cleanup(&c);
    http(&c, "GET", NULL, "Accept", "text/event-stream", NULL); /* no session */
    assert_int_equal(c.status, 405);
    assert_false(c.stream);
    cap_cleanup(&c);
    http(&c, "GET", NULL, "Mcp-Session-Id", "bogus", "Accept", "text/event-stream", NULL);
    assert_int_equal(c.status, 404);
    assert_false(c.stream);
    cap_cleanup(&c);
    http(&c, "GET", NULL, "Mcp-Session-Id", sid, "Accept", "text/event-stream",
         "MCP-Protocol-Version", NK_MCP_MODERN_VERSION, NULL); /* no stream in 2026-07-28 */
    assert_int_equal(c.status, 405);
    assert_false(c.stream);
    cap_cleanup(&c);

    http(&c, "PUT", "{}", NULL);
    assert_int_equal(c.status, 405);
    cap_cleanup(&c);

    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", "Mcp-Session-Id", sid,
         "MCP-Protocol-Version", "1999-01-01", NULL);
    assert_int_equal(c.status, 400);
    cap_cleanup(&c);
}

static void test_host_origin(void **state)
{
    struct captured c;

    (void)state;
    http(&c, "POST", init_body, "Host", "evil.example.com", "Origin", "http://evil.example.com",
         NULL);
    assert_int_equal(c.status, 403);
    cap_cleanup(&c);
    http(&c, "POST", init_body, "Host", "localhost:9090", "Origin", "http://evil.example.com",
         NULL);
    assert_int_equal(c.status, 403);
    cap_cleanup(&c);
    http(&c, "POST", init_body, "Host", "localhost:9090", "Origin", "http://localhost:9090", NULL);
    assert_int_equal(c.status, 200);
    cap_cleanup(&c);
    assert_true(nk_mcp_host_allowed(engine, "[::1]:8080", "http://[::1]:8080"));
    assert_true(nk_mcp_host_allowed(engine, "127.0.0.1", NULL));
    assert_true(nk_mcp_host_allowed(engine, "MCP.example.test:443", "https://mcp.example.test"));
    assert_true(nk_mcp_host_allowed(engine, NULL, NULL));
    assert_false(nk_mcp_host_allowed(engine, "localhost.evil.com", NULL));
    assert_false(nk_mcp_host_allowed(engine, "127.0.0.1:80x", NULL));
    assert_false(nk_mcp_host_allowed(engine, "localhost", "null"));
    assert_false(nk_mcp_host_allowed(engine, "[::1", NULL));
}

static void test_tools_list(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    json_t *tl, *t, *ann, *schema;

    (void)state;
    open_session(sid);
    http(&c, "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", "Mcp-Session-Id",
         sid, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 200);
    tl = json_object_get(result_of(&c), "tools");
    assert_int_equal(json_array_size(tl), 8);
    assert_null(json_object_get(result_of(&c), "nextCursor"));
    assert_null(json_object_get(result_of(&c), "ttlMs"));
    t = json_array_get(tl, 0);
    assert_string_equal(json_string_value(json_object_get(t, "name")), "get");
    assert_string_equal(json_string_value(json_object_get(t, "title")), "Get a token");
    assert_string_equal(json_string_value(json_object_get(t, "description")), "a test tool");
    ann = json_object_get(t, "annotations");
    assert_true(json_is_true(json_object_get(ann, "readOnlyHint")));
    assert_true(json_is_false(json_object_get(ann, "destructiveHint")));
    assert_true(json_is_true(json_object_get(ann, "idempotentHint")));
    assert_true(json_is_false(json_object_get(ann, "openWorldHint")));
    schema = json_object_get(t, "inputSchema");
    assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(schema, "properties"), "id"), "type")),
                        "string");
    assert_string_equal(json_string_value(json_array_get(json_object_get(schema, "required"), 0)),
                        "id");
    ann = json_object_get(json_array_get(tl, 2), "annotations");
    assert_true(json_is_true(json_object_get(ann, "destructiveHint")));
    assert_true(json_is_true(json_object_get(ann, "openWorldHint")));
    assert_null(json_object_get(json_object_get(json_array_get(tl, 1), "inputSchema"), "required"));
    cap_cleanup(&c);
}

static void test_tools_pagination(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX], body[512], cursor[128] = "";
    struct captured c;
    size_t seen = 0;
    int pages = 0;

    (void)state;
    backend.adapter = &many_adapter;
    open_session(sid);
    do {
        json_t *r, *next;
        size_t i;

        if (cursor[0] == '\0')
            snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        else
            snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                     "\"cursor\":\"%s\"}}",
                     cursor);
        http(&c, "POST", body, "Mcp-Session-Id", sid, NULL);
        r = result_of(&c);
        for (i = 0; i < json_array_size(json_object_get(r, "tools")); i++) {
            char want[16];

            snprintf(want, sizeof(want), "tool-%03zu", seen++);
            assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(json_object_get(r, "tools"), i), "name")),
                                want);
        }
        next = json_object_get(r, "nextCursor");
        snprintf(cursor, sizeof(cursor), "%s", next != NULL ? json_string_value(next) : "");
        cap_cleanup(&c);
        pages++;
    } while (cursor[0] != '\0' && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(seen, N_MANY);

    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"cursor\":"
         "\"bogus\"}}",
         "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{\"cursor\":3}}",
         "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
    backend.adapter = &adapter;
}

/* --read-only: only readOnly tools are listed, each exactly once, however they fall on pages,
 * and calling another one is an unknown tool. */
static void test_tools_read_only(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX], body[512], cursor[128] = "", want[16];
    struct captured c;
    size_t i, seen = 0, next_ro = 0;
    int pages = 0;

    (void)state;
    for (i = 0; i < N_MANY; i++)
        many[i].hints.read_only = i % 3 == 0 || (i >= 100 && i < 200); /* sparse, then a run */
    backend.adapter = &many_adapter;
    backend.read_only = true;
    open_session(sid);
    do {
        json_t *r, *tl, *next;

        if (cursor[0] == '\0')
            snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
        else
            snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                     "\"cursor\":\"%s\"}}",
                     cursor);
        http(&c, "POST", body, "Mcp-Session-Id", sid, NULL);
        r = result_of(&c);
        tl = json_object_get(r, "tools");
        for (i = 0; i < json_array_size(tl); i++) {
            while (next_ro < N_MANY && !many[next_ro].hints.read_only)
                next_ro++;
            snprintf(want, sizeof(want), "tool-%03zu", next_ro++);
            assert_string_equal(json_string_value(json_object_get(json_array_get(tl, i), "name")),
                                want);
            seen++;
        }
        next = json_object_get(r, "nextCursor");
        snprintf(cursor, sizeof(cursor), "%s", next != NULL ? json_string_value(next) : "");
        cap_cleanup(&c);
        pages++;
    } while (cursor[0] != '\0' && pages < 10);
    for (i = 0, next_ro = 0; i < N_MANY; i++)
        next_ro += many[i].hints.read_only;
    assert_int_equal(seen, next_ro);
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"tool-001\",\"arguments\":{}}}",
         "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
    for (i = 0; i < N_MANY; i++)
        many[i].hints.read_only = false;
    backend.read_only = false;
    backend.adapter = &adapter;
}

static void call_tool(struct captured *c, const char *sid, const char *name, const char *args)
{
    char body[2048];

    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\""
             "%s%s}}",
             name, args != NULL ? ",\"arguments\":" : "", args != NULL ? args : "");
    http(c, "POST", body, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25", NULL);
}

static void test_tools_call(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    json_t *r, *text;

    (void)state;
    open_session(sid);
    call_tool(&c, sid, "get", "{\"id\":\"abc\"}");
    assert_int_equal(c.status, 200);
    r = result_of(&c);
    assert_null(json_object_get(r, "isError"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "structuredContent"), "tool")), "get");
    text = json_object_get(json_array_get(json_object_get(r, "content"), 0), "text");
    assert_string_equal(json_string_value(text), "{\"tool\":\"get\",\"n\":1}");
    assert_string_equal(json_string_value(json_object_get(last_args, "id")), "abc");
    assert_null(json_object_get(r, "resultType"));
    cap_cleanup(&c);

    /* Non-object output is wrapped up to 2025-11-25. */
    call_tool(&c, sid, "scalar", NULL);
    r = result_of(&c);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "result")), 5);
    assert_int_equal(json_object_size(last_args), 0);
    cap_cleanup(&c);

    call_tool(&c, sid, "upstream-400", "{}");
    r = result_of(&c);
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(r, "content"), 0), "text")),
                        "upstream answered 400: token name cannot be empty");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "structuredContent"), "error")),
        "token name cannot be empty");
    cap_cleanup(&c);

    call_tool(&c, sid, "down", "{}");
    r = result_of(&c);
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_null(json_object_get(r, "structuredContent"));
    cap_cleanup(&c);

    call_tool(&c, sid, "bad-args", "{\"id\":5}");
    r = result_of(&c);
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_non_null(strstr(json_string_value(json_object_get(
                               json_array_get(json_object_get(r, "content"), 0), "text")),
                           "parameter 'id' must be a string"));
    cap_cleanup(&c);

    call_tool(&c, sid, "nope", "{}");
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
    call_tool(&c, sid, "get", "[1]");
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
}

static void *complete_later(void *arg)
{
    struct nk_result r;

    (void)arg;
    memset(&r, 0, sizeof(r));
    r.kind = NK_RES_OK;
    r.json = json_pack("{s:b}", "late", 1);
    deferred.done(deferred.ud, &r);
    json_decref(r.json);
    return NULL;
}

static void test_tools_call_async(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    pthread_t th;

    (void)state;
    open_session(sid);
    memset(&deferred, 0, sizeof(deferred));
    call_tool(&c, sid, "later", "{}");
    assert_int_equal(c.calls, 0); /* waiting for the upstream */
    assert_non_null(deferred.done);
    assert_int_equal(pthread_create(&th, NULL, complete_later, NULL), 0);
    pthread_mutex_lock(&c.mu);
    while (c.calls == 0)
        pthread_cond_wait(&c.cv, &c.mu);
    pthread_mutex_unlock(&c.mu);
    pthread_join(th, NULL);
    assert_int_equal(c.calls, 1);
    assert_true(
        json_is_true(json_object_get(json_object_get(result_of(&c), "structuredContent"), "late")));
    cap_cleanup(&c);
}

static void test_batches(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    static const char batch[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get\","
        "\"arguments\":{\"id\":\"x\"}}}]";

    (void)state;
    open_session(sid);
    http(&c, "POST", batch, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-03-26", NULL);
    assert_int_equal(c.status, 200);
    assert_true(json_is_array(c.json));
    assert_int_equal(json_array_size(c.json), 2);
    cap_cleanup(&c);
    /* No header means 2025-03-26. */
    http(&c, "POST", batch, "Mcp-Session-Id", sid, NULL);
    assert_int_equal(json_array_size(c.json), 2);
    cap_cleanup(&c);
    http(&c, "POST", "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]",
         "Mcp-Session-Id", sid, NULL);
    assert_int_equal(c.status, 202);
    cap_cleanup(&c);
    http(&c, "POST", batch, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-06-18", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32600);
    cap_cleanup(&c);
    http(&c, "POST", "[]", "Mcp-Session-Id", sid, NULL);
    assert_int_equal(error_code(&c), -32600);
    cap_cleanup(&c);
}

/* Issue 13: answers passed through are taken from the result, not copied; a batch of three
 * outgrows the exchange's inline splice and each answer still lands in its own response. */
static void test_batch_raw_answers(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    size_t i;
    static const char batch[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"raw\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"raw\"}},"
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"raw\"}}]";

    (void)state;
    open_session(sid);
    http(&c, "POST", batch, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-03-26", NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(json_array_size(c.json), 3);
    for (i = 0; i < 3; i++) {
        json_t *res = json_object_get(json_array_get(c.json, i), "result");
        json_t *sc = json_object_get(res, "structuredContent");
        json_t *text = json_object_get(json_array_get(json_object_get(res, "content"), 0), "text");

        assert_int_equal(json_integer_value(json_object_get(json_array_get(c.json, i), "id")),
                         (json_int_t)i + 1);
        assert_int_equal(json_array_size(json_object_get(sc, "n")), 2);
        assert_string_equal(json_string_value(text), "{\"n\": [1, 2]}");
    }
    cap_cleanup(&c);
}

/* ---- stateless era ------------------------------------------------------------------------ */

#define META                                                                                       \
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","                       \
    "\"io.modelcontextprotocol/clientCapabilities\":{}}"

static void modern(struct captured *c, const char *method, const char *name, const char *params,
                   const char *hversion, const char *hmethod, const char *hname)
{
    char body[1024];

    snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\":42,\"method\":\"%s\",\"params\":%s}",
             method, params);
    (void)name;
    http(c, "POST", body, "MCP-Protocol-Version", hversion, "Mcp-Method", hmethod, "Mcp-Name",
         hname, NULL);
}

static void test_modern_discover(void **state)
{
    struct captured c;
    json_t *r;

    (void)state;
    modern(&c, "server/discover", NULL, "{" META "}", "2026-07-28", "server/discover", NULL);
    assert_int_equal(c.status, 200);
    assert_string_equal(c.sid, "");
    r = result_of(&c);
    assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(r, "supportedVersions"), 0)),
        "2026-07-28");
    assert_non_null(json_object_get(json_object_get(r, "capabilities"), "tools"));
    assert_true(json_is_integer(json_object_get(r, "ttlMs")));
    assert_non_null(json_object_get(r, "cacheScope"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(r, "_meta"), "io.modelcontextprotocol/serverInfo"),
            "name")),
        "naftikod");
    assert_int_equal(json_integer_value(json_object_get(c.json, "id")), 42);
    cap_cleanup(&c);
}

static void test_modern_errors(void **state)
{
    struct captured c;
    json_t *data;

    (void)state;
    /* _meta missing or incomplete. */
    modern(&c, "server/discover", NULL, "{}", "2026-07-28", "server/discover", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32602);
    assert_int_equal(json_integer_value(json_object_get(c.json, "id")), 42);
    cap_cleanup(&c);
    modern(&c, "server/discover", NULL,
           "{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}", "2026-07-28",
           "server/discover", NULL);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
    /* Header and body disagree. */
    modern(&c, "server/discover", NULL,
           "{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"v999.0.0\","
           "\"io.modelcontextprotocol/clientCapabilities\":{}}}",
           "2026-07-28", "server/discover", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    /* Agreeing, but unsupported. */
    modern(&c, "server/discover", NULL,
           "{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"v999.0.0\","
           "\"io.modelcontextprotocol/clientCapabilities\":{}}}",
           "v999.0.0", "server/discover", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32022);
    data = json_object_get(json_object_get(c.json, "error"), "data");
    assert_string_equal(json_string_value(json_object_get(data, "requested")), "v999.0.0");
    assert_true(json_array_size(json_object_get(data, "supported")) >= 1);
    cap_cleanup(&c);
    /* Mcp-Method missing, different, or different in case. */
    modern(&c, "tools/list", NULL, "{" META "}", "2026-07-28", NULL, NULL);
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    modern(&c, "tools/list", NULL, "{" META "}", "2026-07-28", "prompts/list", NULL);
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    modern(&c, "tools/list", NULL, "{" META "}", "2026-07-28", "TOOLS/LIST", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    /* Mcp-Name: missing, wrong; surrounding whitespace is fine. */
    modern(&c, "tools/call", NULL, "{\"name\":\"get\",\"arguments\":{\"id\":\"a\"}," META "}",
           "2026-07-28", "tools/call", NULL);
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    modern(&c, "tools/call", NULL, "{\"name\":\"get\",\"arguments\":{\"id\":\"a\"}," META "}",
           "2026-07-28", "tools/call", "wrong_tool_name");
    assert_int_equal(error_code(&c), -32020);
    cap_cleanup(&c);
    modern(&c, "tools/call", NULL, "{\"name\":\"get\",\"arguments\":{\"id\":\"a\"}," META "}",
           " 2026-07-28 ", "\ttools/call ", "  get  ");
    assert_int_equal(c.status, 200);
    assert_string_equal(json_string_value(json_object_get(result_of(&c), "resultType")),
                        "complete");
    cap_cleanup(&c);
    /* Unknown and removed methods: HTTP 404 + -32601. */
    modern(&c, "unknown/method", NULL, "{" META "}", "2026-07-28", "unknown/method", NULL);
    assert_int_equal(c.status, 404);
    assert_int_equal(error_code(&c), -32601);
    cap_cleanup(&c);
    modern(&c, "initialize", NULL, "{" META "}", "2026-07-28", "initialize", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    modern(&c, "ping", NULL, "{" META "}", "2026-07-28", "ping", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    /* No batches. */
    http(&c, "POST", "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]",
         "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/list", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32600);
    cap_cleanup(&c);
    /* Unknown tool stays a protocol error. */
    modern(&c, "tools/call", NULL, "{\"name\":\"nope\"," META "}", "2026-07-28", "tools/call",
           "nope");
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32602);
    cap_cleanup(&c);
}

static void test_modern_tools(void **state)
{
    struct captured c;
    json_t *r;

    (void)state;
    modern(&c, "tools/list", NULL, "{" META "}", "2026-07-28", "tools/list", NULL);
    assert_int_equal(c.status, 200);
    r = result_of(&c);
    assert_int_equal(json_array_size(json_object_get(r, "tools")), 8);
    assert_true(json_integer_value(json_object_get(r, "ttlMs")) >= 0);
    assert_string_equal(json_string_value(json_object_get(r, "cacheScope")), "public");
    assert_string_equal(json_string_value(json_object_get(r, "resultType")), "complete");
    cap_cleanup(&c);
    /* Any JSON value as structuredContent from 2026-07-28. */
    modern(&c, "tools/call", NULL, "{\"name\":\"scalar\"," META "}", "2026-07-28", "tools/call",
           "scalar");
    r = result_of(&c);
    assert_int_equal(json_integer_value(json_object_get(r, "structuredContent")), 5);
    cap_cleanup(&c);
    /* Notifications: 202. */
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{" META "}}",
         "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "notifications/cancelled", NULL);
    assert_int_equal(c.status, 202);
    cap_cleanup(&c);
    /* The stateless era needs no session, and DNS-rebinding protection still applies. */
    http(&c, "POST",
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{" META "}}",
         "Host", "evil.example.com", "MCP-Protocol-Version", "2026-07-28", "Mcp-Method",
         "server/discover", NULL);
    assert_int_equal(c.status, 403);
    cap_cleanup(&c);
}

/* ---- issue 17: hostile input ---------------------------------------------------------------- */

static void line(struct captured *c, struct nk_mcp_conn *conn, const char *text);

/* Item 14: a duplicate key is a parse error (-32700) and nothing runs, on HTTP and stdio. */
static void test_duplicate_keys(void **state)
{
    static const char dup[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get\","
        "\"name\":\"scalar\",\"arguments\":{\"id\":\"x\"}}}";
    static const char dup_batch[] =
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"get\",\"arguments\":{\"id\":\"x\"}}},{\"jsonrpc\":\"2.0\",\"id\":2,\"id\":3,"
        "\"method\":\"ping\"}]";
    char sid[NK_MCP_SESSION_ID_MAX];
    struct nk_mcp_conn conn;
    struct captured c;

    (void)state;
    open_session(sid);
    http(&c, "POST", dup, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25", NULL);
    assert_int_equal(c.status, 400);
    assert_int_equal(error_code(&c), -32700);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(c.json, "error"), "message")),
               "duplicate"));
    cap_cleanup(&c);
    http(&c, "POST", dup_batch, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-03-26", NULL);
    assert_int_equal(error_code(&c), -32700);
    cap_cleanup(&c);
    memset(&conn, 0, sizeof(conn));
    line(&c, &conn, dup);
    assert_int_equal(error_code(&c), -32700);
    cap_cleanup(&c);
    assert_int_equal(n_calls, 0); /* neither name ran */
}

static const char *error_message(struct captured *c)
{
    return json_string_value(json_object_get(json_object_get(c->json, "error"), "message"));
}

/* Item 7: text cut mid-character or holding bad bytes still gives a well-formed answer, and one
 * answer that cannot be built never costs the others of a batch. */
static void test_utf8_answers(void **state)
{
    char sid[NK_MCP_SESSION_ID_MAX], name[801], body[2048], buf[16];
    const char *text;
    struct captured c;
    size_t i;

    (void)state;
    for (i = 0; i < 400; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    name[800] = '\0';
    open_session(sid);
    call_tool(&c, sid, name, NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(error_code(&c), -32602);
    assert_non_null(strstr(error_message(&c), "Unknown tool: \xc3\xa9\xc3\xa9"));
    cap_cleanup(&c);

    /* The state-changing call's answer survives its neighbour. */
    snprintf(body, sizeof(body),
             "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"get\",\"arguments\":{\"id\":\"lost-token\"}}},{\"jsonrpc\":\"2.0\",\"id\":2,"
             "\"method\":\"tools/call\",\"params\":{\"name\":\"%s\"}}]",
             name);
    http(&c, "POST", body, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-03-26", NULL);
    assert_int_equal(c.status, 200);
    assert_int_equal(json_array_size(c.json), 2);
    assert_non_null(json_object_get(json_array_get(c.json, 0), "result"));
    assert_non_null(json_object_get(json_array_get(c.json, 1), "error"));
    cap_cleanup(&c);

    /* An upstream message with a byte that is not UTF-8: U+FFFD in its place. */
    call_tool(&c, sid, "bad-utf8", NULL);
    assert_int_equal(c.status, 200);
    text = json_string_value(
        json_object_get(json_array_get(json_object_get(result_of(&c), "content"), 0), "text"));
    assert_non_null(text);
    assert_non_null(strstr(text, "bad \xef\xbf\xbd byte"));
    cap_cleanup(&c);

    /* The shared helpers: cut on a boundary, replace bad bytes. */
    assert_int_equal(nk_utf8_copy(buf, 4, "\xc3\xa9\xc3\xa9", 4), 2);
    assert_string_equal(buf, "\xc3\xa9");
    nk_utf8_copy(buf, sizeof(buf),
                 "a\xff"
                 "b\xed\xa0\x80",
                 6);
    assert_string_equal(buf, "a\xef\xbf\xbd"
                             "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    memcpy(buf, "xy\xc3", 4); /* what snprintf(buf, 4, "xy%s", "\xc3\xa9") leaves */
    nk_utf8_fix(buf, 4);
    assert_string_equal(buf, "xy");
}

/* Item 18a: a session is bound to the caller that opened it. */
static void test_session_bound_to_caller(void **state)
{
    static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;

    (void)state;
    http(&c, "POST", init_body, "caller", "alice", NULL);
    assert_int_equal(c.status, 200);
    memcpy(sid, c.sid, sizeof(sid));
    cap_cleanup(&c);
    http(&c, "POST", ping, "Mcp-Session-Id", sid, "caller", "bob", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    http(&c, "POST", ping, "Mcp-Session-Id", sid, NULL); /* no caller is another caller */
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    http(&c, "DELETE", NULL, "Mcp-Session-Id", sid, "caller", "bob", NULL);
    assert_int_equal(c.status, 404);
    cap_cleanup(&c);
    http(&c, "POST", ping, "Mcp-Session-Id", sid, "caller", "alice", NULL);
    assert_int_equal(c.status, 200);
    cap_cleanup(&c);
    http(&c, "DELETE", NULL, "Mcp-Session-Id", sid, "caller", "alice", NULL);
    assert_int_equal(c.status, 204);
    cap_cleanup(&c);
}

static void complete_deferred(void)
{
    struct nk_result r;

    memset(&r, 0, sizeof(r));
    r.kind = NK_RES_UNREACHABLE;
    snprintf(r.message, sizeof(r.message), "upstream unreachable: cancelled");
    deferred.done(deferred.ud, &r);
}

/* Item 15: a cancelled request gets no response and its upstream call is cancelled. */
static void test_cancelled(void **state)
{
    static const char call_later[] =
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"later\"}}";
    static const char cancel7[] = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                                  "\"params\":{\"requestId\":7,\"reason\":\"user\"}}";
    char sid[NK_MCP_SESSION_ID_MAX], other[NK_MCP_SESSION_ID_MAX];
    struct nk_mcp_conn conn;
    struct captured c, pending;

    (void)state;
    /* stdio, handshake era */
    memset(&conn, 0, sizeof(conn));
    memset(&deferred, 0, sizeof(deferred));
    cap_init(&pending);
    nk_mcp_line(engine, &backend, &conn, call_later, strlen(call_later), capture, &pending);
    assert_int_equal(pending.calls, 0);
    assert_non_null(deferred.done);
    line(&c, &conn,
         "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
         "\"params\":{\"requestId\":8}}"); /* not in flight: ignored */
    assert_int_equal(n_cancels, 0);
    cap_cleanup(&c);
    line(&c, &conn, cancel7);
    assert_null(c.body);
    cap_cleanup(&c);
    assert_int_equal(n_cancels, 1);
    assert_true(cancelled_tag == nk_mcp_call_tag(deferred.ud));
    complete_deferred();
    assert_int_equal(pending.calls, 1);
    assert_null(pending.body); /* nothing is written for the cancelled request */
    cap_cleanup(&pending);

    /* stdio, stateless era */
    memset(&deferred, 0, sizeof(deferred));
    cap_init(&pending);
    {
        static const char modern_later[] =
            "{\"jsonrpc\":\"2.0\",\"id\":\"m1\",\"method\":\"tools/call\",\"params\":{"
            "\"name\":\"later\"," META "}}";

        nk_mcp_line(engine, &backend, &conn, modern_later, strlen(modern_later), capture, &pending);
    }
    line(&c, &conn,
         "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
         "\"params\":{\"requestId\":\"m1\"}}");
    cap_cleanup(&c);
    assert_int_equal(n_cancels, 2);
    complete_deferred();
    assert_null(pending.body);
    cap_cleanup(&pending);

    /* HTTP, handshake era: only the same session can cancel. */
    open_session(sid);
    open_session(other);
    memset(&deferred, 0, sizeof(deferred));
    http(&pending, "POST", call_later, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25",
         NULL);
    assert_int_equal(pending.calls, 0);
    http(&c, "POST", cancel7, "Mcp-Session-Id", other, "MCP-Protocol-Version", "2025-11-25", NULL);
    assert_int_equal(c.status, 202);
    cap_cleanup(&c);
    assert_int_equal(n_cancels, 2); /* another session's id 7 is not ours */
    http(&c, "POST", cancel7, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25", NULL);
    assert_int_equal(c.status, 202);
    cap_cleanup(&c);
    assert_int_equal(n_cancels, 3);
    complete_deferred();
    assert_int_equal(pending.calls, 1);
    assert_int_equal(pending.status, 202);
    assert_null(pending.body);
    cap_cleanup(&pending);

    /* HTTP, stateless era: closing the request's stream cancels it ... */
    memset(&deferred, 0, sizeof(deferred));
    modern(&pending, "tools/call", NULL, "{\"name\":\"later\"," META "}", "2026-07-28",
           "tools/call", "later");
    assert_int_equal(pending.calls, 0);
    nk_mcp_http_closed(engine, &c); /* another exchange's stream: nothing */
    assert_int_equal(n_cancels, 3);
    nk_mcp_http_closed(engine, &pending);
    assert_int_equal(n_cancels, 4);
    assert_true(cancelled_tag == nk_mcp_call_tag(deferred.ud));
    complete_deferred();
    assert_int_equal(pending.calls, 1);
    assert_null(pending.body);
    cap_cleanup(&pending);
    /* ... but not in the handshake era, where a disconnect is no cancellation. */
    memset(&deferred, 0, sizeof(deferred));
    http(&pending, "POST", call_later, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25",
         NULL);
    nk_mcp_http_closed(engine, &pending);
    assert_int_equal(n_cancels, 4);
    complete_deferred();
    assert_non_null(pending.body);
    cap_cleanup(&pending);

    /* Not cancelled: answered as usual. */
    memset(&deferred, 0, sizeof(deferred));
    http(&pending, "POST", call_later, "Mcp-Session-Id", sid, "MCP-Protocol-Version", "2025-11-25",
         NULL);
    complete_deferred();
    assert_int_equal(pending.status, 200);
    assert_non_null(pending.body);
    cap_cleanup(&pending);
}

/* ---- allocation failures ------------------------------------------------------------------ */

static long alloc_budget = -1; /* < 0: unlimited */
static bool alloc_failed;

static void *budget_malloc(size_t n)
{
    if (alloc_budget == 0) {
        alloc_failed = true;
        return NULL;
    }
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

/* Fail the N-th jansson allocation for every kind of exchange: each must still answer exactly
 * once and free what it made (ASan checks the leaks). */
static void test_alloc_failures(void **state)
{
    static const char *const bodies[] = {
        init_body,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get\","
        "\"arguments\":{\"id\":\"x\"}}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
        "\"upstream-400\"}}",
        "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},{\"jsonrpc\":\"2.0\",\"id\":2,"
        "\"method\":\"nope\"}]",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" META "}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\",\"params\":{\"_meta\":{"
        "\"io.modelcontextprotocol/protocolVersion\":\"v9\",\"io.modelcontextprotocol/"
        "clientCapabilities\":{}}}}",
        "{\"jsonrpc\":",
    };
    char sid[NK_MCP_SESSION_ID_MAX];
    struct captured c;
    size_t i;
    long n;

    (void)state;
    open_session(sid);
    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        for (n = 0; n < 10000; n++) {
            json_set_alloc_funcs(budget_malloc, free);
            alloc_budget = n;
            alloc_failed = false;
            if (strstr(bodies[i], "_meta") != NULL)
                http(&c, "POST", bodies[i], "MCP-Protocol-Version",
                     strstr(bodies[i], "v9") ? "v9" : "2026-07-28", "Mcp-Method",
                     strstr(bodies[i], "discover") ? "server/discover" : "tools/list", NULL);
            else
                http(&c, "POST", bodies[i], "Mcp-Session-Id", sid, "MCP-Protocol-Version",
                     "2025-03-26", NULL);
            alloc_budget = -1;
            json_set_alloc_funcs(malloc, free);
            assert_int_equal(c.calls, 1);
            assert_true(c.status >= 200 && c.status < 600);
            cap_cleanup(&c);
            if (!alloc_failed)
                break;
        }
        assert_true(n < 10000);
    }
}

/* ---- stdio -------------------------------------------------------------------------------- */

static void line(struct captured *c, struct nk_mcp_conn *conn, const char *text)
{
    cap_init(c);
    nk_mcp_line(engine, &backend, conn, text, strlen(text), capture, c);
    assert_int_equal(c->calls, 1);
}

static void test_stdio(void **state)
{
    struct nk_mcp_conn conn;
    struct captured c;

    (void)state;
    memset(&conn, 0, sizeof(conn));
    line(&c, &conn,
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2025-03-26\",\"capabilities\":{}}}");
    assert_string_equal(json_string_value(json_object_get(result_of(&c), "protocolVersion")),
                        "2025-03-26");
    assert_string_equal(conn.version, "2025-03-26");
    assert_string_equal(c.sid, "");
    cap_cleanup(&c);
    line(&c, &conn, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_null(c.body);
    cap_cleanup(&c);
    line(&c, &conn,
         "[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"},"
         "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}]");
    assert_int_equal(json_array_size(c.json), 2);
    cap_cleanup(&c);
    line(&c, &conn, "{nope");
    assert_int_equal(error_code(&c), -32700);
    cap_cleanup(&c);

    /* After negotiating 2025-06-18, batches are refused. */
    line(&c, &conn,
         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
         "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{}}}");
    cap_cleanup(&c);
    line(&c, &conn, "[{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}]");
    assert_int_equal(error_code(&c), -32600);
    cap_cleanup(&c);

    /* Stateless messages work over stdio without headers. */
    line(&c, &conn,
         "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get\","
         "\"arguments\":{\"id\":\"z\"}," META "}}");
    assert_string_equal(json_string_value(json_object_get(result_of(&c), "resultType")),
                        "complete");
    cap_cleanup(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_b64url),
        cmocka_unit_test_setup_teardown(test_initialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test(test_ended_ring_bounded),
        cmocka_unit_test_setup_teardown(test_key_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifications_and_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_framing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_pagination, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_call_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_raw_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modern_discover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modern_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modern_tools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stdio, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_utf8_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_bound_to_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled, setup, teardown),
    };

    return cmocka_run_group_tests_name("mcp", tests, NULL, NULL);
}
