/* tests/unit/cluster/test_slots.c - the driver's executor table holds a slot per open
 * connection, not per connection ever authenticated (issue 18): 40 clients holding the
 * secret log in and leave without registering, one after the other, and the table stays at
 * one or two slots; a registered executor's slot survives its neighbours' churn. */
#include <criterion/criterion.h>
#include <stdio.h>
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

static const em_net_ops client_ops = {nop_open, nop_frame, nop_close};

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
