/* tests/unit/cluster/test_slots.c - what the driver keeps for executors' connections
 * (issue 18):
 *  - its executor table holds a slot per open connection, not per connection ever
 *    authenticated: 40 clients holding the secret log in and leave without registering,
 *    one after the other, and the table stays at one or two slots; a registered executor's
 *    slot survives its neighbours' churn;
 *  - a RESULT frame is decoded only for a task in flight on that connection: a registered
 *    executor's result for a task nobody launched, a zstd block of 64 MiB of zeros in a
 *    few KiB, leaves the driver's memory where it was and the connection open. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cluster/cluster.h"
#include "engine/executor/protocol.h"
#include "engine/net/net.h"

#define SECRET "slots-test-secret-0123456789"

static void nop_open(void *ud, em_conn_id c, bool inbound)
{
    (void)ud, (void)c, (void)inbound;
}

static int nop_frame(void *ud, em_conn_id c, uint8_t type, em_slice p, em_err *err)
{
    (void)ud, (void)c, (void)type, (void)p, (void)err;
    return 0;
}

static void nop_close(void *ud, em_conn_id c, const em_err *why)
{
    (void)ud, (void)c, (void)why;
}

static const em_net_ops client_ops = {nop_open, nop_frame, nop_close, NULL};

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (up to 5 s) until the table has at most `want` slots; returns the last count. */
static uint32_t slots_settle(em_cluster *c, uint32_t want)
{
    uint32_t n = em_cluster_num_slots(c);
    for (int i = 0; i < 500 && n > want; i++) {
        sleep_ms(10);
        n = em_cluster_num_slots(c);
    }
    return n;
}

Test(cluster_slots, closed_connections_free_their_slots, .timeout = 60)
{
    em_err err = EM_ERR_INIT;
    em_cluster_opts o = {.mode = EM_CLUSTER_ACCEPT, .nexec = 1, .secret = SECRET};
    em_cluster *c = em_cluster_new(&o, &err);
    cr_assert(c, "%s", err.msg);
    char host[64];
    snprintf(host, sizeof host, "%s", em_cluster_address(c));
    char *colon = strrchr(host, ':');
    cr_assert(colon);
    *colon = '\0';
    uint16_t port = (uint16_t)atoi(colon + 1);

    em_net_opts no = {.secret = SECRET, .secret_len = strlen(SECRET), .ops = &client_ops};
    em_net *n = em_net_new(&no, &err);
    cr_assert(n, "%s", err.msg);

    /* A registered executor that stays. */
    em_conn_id keep;
    cr_assert_eq(em_net_connect(n, host, port, &keep, &err), 0, "%s", err.msg);
    em__msg reg = {.type = EM__MSG_REGISTER, .cores = 1, .pid = 1, .port = 1};
    snprintf(reg.exec_id, sizeof reg.exec_id, "exec-keep");
    snprintf(reg.host, sizeof reg.host, "127.0.0.1");
    em_vbuf v;
    em_vbuf_init(&v);
    cr_assert_eq(em__msg_encode(&reg, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(em_net_send(n, keep, EM_FRAME_RPC, v.data, v.len, &err), 0, "%s", err.msg);
    em_vbuf_destroy(&v);
    cr_assert_eq(em_cluster_wait_executors(c, 1, 10000, &err), 0, "%s", err.msg);

    for (int i = 0; i < 40; i++) {
        em_conn_id id;
        cr_assert_eq(em_net_connect(n, host, port, &id, &err), 0, "connect %d: %s", i, err.msg);
        cr_assert_leq(slots_settle(c, 2), 2, "connection %d: %u slots", i,
                      em_cluster_num_slots(c));
        em_net_close(n, id);
        cr_assert_leq(slots_settle(c, 2), 2);
    }
    cr_assert_leq(em_cluster_num_slots(c), 2, "%u slots after 40 closed connections",
                  em_cluster_num_slots(c));
    cr_assert_eq(em_cluster_num_executors(c), 1, "the registered executor was disturbed");
    em_net_free(n);
    em_cluster_free(c);
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

static em_conn_id register_as(em_net *n, const char *host, uint16_t port, const char *id)
{
    em_err err = EM_ERR_INIT;
    em_conn_id c;
    cr_assert_eq(em_net_connect(n, host, port, &c, &err), 0, "%s", err.msg);
    em__msg reg = {.type = EM__MSG_REGISTER, .cores = 1, .pid = 1, .port = 1};
    snprintf(reg.exec_id, sizeof reg.exec_id, "%s", id);
    snprintf(reg.host, sizeof reg.host, "127.0.0.1");
    em_vbuf v;
    em_vbuf_init(&v);
    cr_assert_eq(em__msg_encode(&reg, &v, &err), 0, "%s", err.msg);
    cr_assert_eq(em_net_send(n, c, EM_FRAME_RPC, v.data, v.len, &err), 0, "%s", err.msg);
    em_vbuf_destroy(&v);
    return c;
}

Test(cluster_slots, result_for_no_task_is_not_decoded, .timeout = 60)
{
    em_err err = EM_ERR_INIT;
    em_cluster_opts o = {.mode = EM_CLUSTER_ACCEPT, .nexec = 1, .secret = SECRET};
    em_cluster *c = em_cluster_new(&o, &err);
    cr_assert(c, "%s", err.msg);
    char host[64];
    snprintf(host, sizeof host, "%s", em_cluster_address(c));
    char *colon = strrchr(host, ':');
    *colon = '\0';
    uint16_t port = (uint16_t)atoi(colon + 1);
    em_net_opts no = {.secret = SECRET, .secret_len = strlen(SECRET), .ops = &client_ops};
    em_net *n = em_net_new(&no, &err);
    cr_assert(n, "%s", err.msg);
    em_conn_id x = register_as(n, host, port, "exec-r");
    cr_assert_eq(em_cluster_wait_executors(c, 1, 10000, &err), 0, "%s", err.msg);

    /* 64 MiB of zeros (the most a small frame may expand to) as a zstd block. */
    size_t raw = (size_t)64 << 20;
    em_vbuf frame;
    em_vbuf_init(&frame);
    uint8_t hdr[EM__DATA_HDR];
    em__data_hdr(hdr, EM__DATA_RESULT, 1, 999);
    cr_assert_eq(em_vbuf_append(&frame, hdr, sizeof hdr), 0);
    {
        em_batch *b = em_batch_new_take(EM_REC_FIXED, 8, raw / 8, em_calloc(1, raw), raw);
        cr_assert(b);
        em_vbuf blk;
        em_vbuf_init(&blk);
        cr_assert_eq(em_block_encode(b, EM_CODEC_ZSTD, 1, &blk, &err), 0, "%s", err.msg);
        em_batch_unref(b);
        cr_assert_lt(blk.len, (size_t)1 << 20, "the block is not small: %zu", blk.len);
        cr_assert_eq(em_vbuf_append(&frame, blk.data, blk.len), 0);
        em_vbuf_destroy(&blk);
    }
    long before = rss_kib();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(em_net_send(n, x, EM_FRAME_DATA, frame.data, frame.len, &err), 0, "%s",
                     err.msg);
    em_vbuf_destroy(&frame);
    sleep_ms(500);
    long after = rss_kib();
    cr_assert_lt(after - before, 32 << 10, "RSS grew by %ld KiB on a result for no task",
                 after - before);
    cr_assert_eq(em_cluster_num_executors(c), 1, "the connection was closed");
    em_net_free(n);
    em_cluster_free(c);
}
