/* tests/unit/deploy/test_master.c - the master's bookkeeping: workers, applications,
 * executor grants, losses, and protocol errors, driven without sockets. */
#include <criterion/criterion.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include <string.h>

#include "engine/deploy/deploy.h"

typedef struct sent {
    uint64_t conn;
    json_t *msg;
} sent;

typedef struct outbox {
    sent s[256];
    int n;
} outbox;

static int capture(void *ud, uint64_t conn, const char *json, size_t len)
{
    outbox *o = ud;
    cr_assert_lt(o->n, 256);
    o->s[o->n].conn = conn;
    o->s[o->n].msg = json_loadb(json, len, 0, NULL);
    cr_assert_not_null(o->s[o->n].msg);
    o->n++;
    return 0;
}

static int count(outbox *o, uint64_t conn, const char *t)
{
    int c = 0;
    for (int i = 0; i < o->n; i++)
        if (o->s[i].conn == conn && !strcmp(json_string_value(json_object_get(o->s[i].msg, "t")), t))
            c++;
    return c;
}

static json_t *last(outbox *o, uint64_t conn, const char *t)
{
    for (int i = o->n - 1; i >= 0; i--)
        if (o->s[i].conn == conn && !strcmp(json_string_value(json_object_get(o->s[i].msg, "t")), t))
            return o->s[i].msg;
    return NULL;
}

static int msg(em_master *m, uint64_t conn, const char *s)
{
    em_err err = EM_ERR_INIT;
    return em_master_on_message(m, conn, (const uint8_t *)s, strlen(s), &err);
}

static void free_outbox(outbox *o)
{
    for (int i = 0; i < o->n; i++)
        json_decref(o->s[i].msg);
}

#define SECRET "0123456789abcdef0123"

Test(master, grants_spread_out_and_reclaims)
{
    outbox ob = {0};
    em_master_io io = {.send = capture, .ud = &ob};
    em_master *m = em_master_new(&io);
    cr_assert_eq(msg(m, 1, "{\"t\":\"register_worker\",\"id\":\"w1\",\"host\":\"h1\",\"cores\":4,"
                           "\"memory\":4294967296}"), 0);
    cr_assert_eq(msg(m, 2, "{\"t\":\"register_worker\",\"id\":\"w2\",\"host\":\"h2\",\"cores\":2,"
                           "\"memory\":4294967296}"), 0);
    cr_assert_eq(count(&ob, 1, "registered_worker"), 1);
    cr_assert_eq(em_master_num_workers(m), 2);
    /* An app wanting 3 cores: one executor per worker, biggest worker first. */
    cr_assert_eq(msg(m, 10, "{\"t\":\"register_app\",\"name\":\"wc\",\"driver\":\"127.0.0.1:5000\","
                            "\"secret\":\"" SECRET "\",\"total_cores\":3}"), 0);
    cr_assert_eq(count(&ob, 1, "launch_executor"), 1);
    json_t *l1 = last(&ob, 1, "launch_executor");
    cr_assert_eq(json_integer_value(json_object_get(l1, "cores")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(l1, "secret")), SECRET);
    cr_assert_str_eq(json_string_value(json_object_get(l1, "driver")), "127.0.0.1:5000");
    cr_assert_eq(count(&ob, 2, "launch_executor"), 0);
    json_t *reg = last(&ob, 10, "registered_app");
    cr_assert_eq(json_integer_value(json_object_get(reg, "executors")), 1);
    cr_assert_eq(count(&ob, 10, "executor_added"), 1);
    /* A second app (all cores): w1's last core and w2's two. */
    cr_assert_eq(msg(m, 11, "{\"t\":\"register_app\",\"name\":\"b\",\"driver\":\"h:1\","
                            "\"secret\":\"" SECRET "\"}"), 0);
    cr_assert_eq(count(&ob, 11, "executor_added"), 2);
    cr_assert_eq(count(&ob, 1, "launch_executor"), 2);
    cr_assert_eq(count(&ob, 2, "launch_executor"), 1);
    /* The first driver goes away: its executor on w1 is killed, its core comes back. */
    em_master_on_close(m, 10);
    cr_assert_eq(count(&ob, 1, "kill_executor"), 1);
    cr_assert_str_eq(json_string_value(json_object_get(last(&ob, 1, "kill_executor"), "exec")),
                     json_string_value(json_object_get(l1, "exec")));
    cr_assert_eq(em_master_num_apps(m), 1);
    char *js = em_master_json(m);
    json_t *j = json_loads(js, 0, NULL);
    em_free(js);
    json_t *w = json_array_get(json_object_get(j, "workers"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(w, "id")), "w1");
    cr_assert_eq(json_integer_value(json_object_get(w, "cores_used")), 1);
    cr_assert_eq(json_array_size(json_object_get(j, "completed_apps")), 1);
    /* A finished application still lists where it ran (issue 16 item 15). */
    json_t *done = json_array_get(json_object_get(j, "completed_apps"), 0);
    json_t *dex = json_array_get(json_object_get(done, "executors"), 0);
    cr_assert_not_null(dex, "completed app without executors");
    cr_assert_str_eq(json_string_value(json_object_get(dex, "id")),
                     json_string_value(json_object_get(l1, "exec")));
    cr_assert_str_eq(json_string_value(json_object_get(dex, "worker")), "w1");
    cr_assert_str_eq(json_string_value(json_object_get(dex, "state")), "killed at the app's end");
    json_decref(j);
    /* Worker w2 is lost: app b hears executor_removed. */
    em_master_on_close(m, 2);
    cr_assert_eq(count(&ob, 11, "executor_removed"), 1);
    cr_assert_eq(em_master_num_workers(m), 1);
    free_outbox(&ob);
    em_master_free(m);
}

Test(master, executor_exit_is_replaced)
{
    outbox ob = {0};
    em_master_io io = {.send = capture, .ud = &ob};
    em_master *m = em_master_new(&io);
    msg(m, 1, "{\"t\":\"register_worker\",\"id\":\"w1\",\"host\":\"h\",\"cores\":2,\"memory\":4294967296}");
    msg(m, 5, "{\"t\":\"register_app\",\"name\":\"a\",\"driver\":\"h:1\",\"secret\":\"" SECRET "\"}");
    json_t *l = last(&ob, 1, "launch_executor");
    char buf[256];
    snprintf(buf, sizeof buf, "{\"t\":\"executor_exited\",\"app\":\"%s\",\"exec\":\"%s\",\"status\":137}",
             json_string_value(json_object_get(l, "app")), json_string_value(json_object_get(l, "exec")));
    cr_assert_eq(msg(m, 1, buf), 0);
    cr_assert_eq(count(&ob, 5, "executor_removed"), 1);
    cr_assert_eq(count(&ob, 1, "launch_executor"), 2);    /* the replacement */
    /* Only the worker that runs it may report it: from the driver it is a protocol error. */
    cr_assert_lt(msg(m, 5, buf), 0);
    cr_assert_eq(em_master_num_apps(m), 0);               /* that driver was dropped */
    free_outbox(&ob);
    em_master_free(m);
}

Test(master, protocol_errors_drop_the_peer)
{
    outbox ob = {0};
    em_master_io io = {.send = capture, .ud = &ob};
    em_master *m = em_master_new(&io);
    static const char *const bad[] = {
        "", "null", "[]", "{}", "{\"t\":1}", "{\"t\":\"unregister_app\"}",
        "{\"t\":\"register_worker\",\"id\":\"w\",\"host\":\"h\",\"cores\":0,\"memory\":1}",
        "{\"t\":\"register_worker\",\"id\":\"w w\",\"host\":\"h\",\"cores\":1,\"memory\":1}",
        "{\"t\":\"register_worker\",\"id\":\"w\",\"host\":\"h\",\"cores\":-1,\"memory\":1}",
        "{\"t\":\"register_worker\",\"id\":\"w\",\"host\":\"h\",\"cores\":\"2\",\"memory\":1}",
        "{\"t\":\"register_app\",\"name\":\"a\",\"driver\":\"h:1\",\"secret\":\"short\"}",
        "{\"t\":\"register_app\",\"name\":\"a\",\"driver\":\"h:1\"}",
        "{\"t\":\"x\",\"t\":\"y\"}",
        "{\"t\":\"register_worker\",\"id\":\"0123456789012345678901234567890123456789012345678901234567890123456789\",\"host\":\"h\",\"cores\":1,\"memory\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_lt(msg(m, 100 + i, bad[i]), 0, "case %zu: %s", i, bad[i]);
    cr_assert_eq(em_master_num_workers(m), 0);
    cr_assert_eq(em_master_num_apps(m), 0);
    /* Registering twice on one connection, or a taken id, is refused too. */
    const char *w = "{\"t\":\"register_worker\",\"id\":\"w\",\"host\":\"h\",\"cores\":1,\"memory\":1}";
    cr_assert_eq(msg(m, 1, w), 0);
    cr_assert_lt(msg(m, 2, w), 0);
    cr_assert_lt(msg(m, 1, w), 0);
    cr_assert_eq(em_master_num_workers(m), 0);    /* conn 1 was dropped by its error */
    em_err err = EM_ERR_INIT;
    uint8_t big[EM_STANDALONE_MAX_MSG + 1];
    memset(big, ' ', sizeof big);
    cr_assert_lt(em_master_on_message(m, 3, big, sizeof big, &err), 0);
    free_outbox(&ob);
    em_master_free(m);
}

Test(master, urls_and_secrets)
{
    char host[64];
    uint16_t port;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_standalone_parse_url("ember://10.0.0.1:7078", host, sizeof host, &port, &err), 0);
    cr_assert_str_eq(host, "10.0.0.1");
    cr_assert_eq(port, 7078);
    cr_assert_eq(em_standalone_parse_url("ember://h", host, sizeof host, &port, &err), 0);
    cr_assert_eq(port, 7077);
    cr_assert_lt(em_standalone_parse_url("spark://h:1", host, sizeof host, &port, &err), 0);
    cr_assert_lt(em_standalone_parse_url("ember://h:0", host, sizeof host, &port, &err), 0);
    cr_assert_lt(em_standalone_parse_url("ember://h:1x", host, sizeof host, &port, &err), 0);
    cr_assert_lt(em_standalone_parse_url("ember://:1", host, sizeof host, &port, &err), 0);
    cr_assert_lt(em_standalone_parse_url("ember://h/x:1", host, sizeof host, &port, &err), 0);
    unsetenv("EMBER_SECRET");
    cr_assert_null(em_standalone_read_secret(NULL, &err));
    setenv("EMBER_SECRET", "short", 1);
    cr_assert_null(em_standalone_read_secret(NULL, &err));
    setenv("EMBER_SECRET", "0123456789abcdef", 1);
    char *s = em_standalone_read_secret(NULL, &err);
    cr_assert_str_eq(s, "0123456789abcdef");
    cr_assert_null(getenv("EMBER_SECRET"), "the secret leaves the environment once read");
    em_standalone_free_secret(s);
    cr_assert_null(em_standalone_read_secret("/no/such/file", &err));
}

/* A secret file others may read is refused, with the chmod to run; 0600 is read. */
Test(standalone, secret_file_permissions)
{
    char path[] = "/tmp/ember-secret-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "0123456789abcdef-secret\n", 24), 24);
    close(fd);
    em_err err = EM_ERR_INIT;
    chmod(path, 0644);
    cr_assert_null(em_standalone_read_secret(path, &err));
    cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
    chmod(path, 0640);
    cr_assert_null(em_standalone_read_secret(path, &err));
    chmod(path, 0600);
    char *s = em_standalone_read_secret(path, &err);
    cr_assert_not_null(s, "%s", err.msg);
    cr_assert_str_eq(s, "0123456789abcdef-secret");
    em_standalone_free_secret(s);
    unlink(path);
}
