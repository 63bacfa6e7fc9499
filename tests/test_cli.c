/* test_cli: the training binary's command-line module (runtime/cli.c).
 * Every kind of mistake gets its one message, the same for the same
 * option in any subcommand, followed by where to find the usage, and
 * status 2; good values land in their destinations; --help prints the
 * usage and ends the subcommand with status 0. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "test_util.h"

static int usage_calls;
static void fake_usage(FILE *f)
{
    usage_calls++;
    fprintf(f, "usage: fake\n");
}

/* The options of a made-up subcommand, with one of each kind. */
typedef struct {
    const char *data, *out;
    uint64_t seed, epochs;
    int64_t steps;
    int threads, flag, choice, have_seed;
    double lr, wd;
} vals;

static const char *const choices[] = {"sgd", "adam", NULL};

static int check_even(const char *v, void *dest)
{
    if (strlen(v) % 2) {
        sc_cli_error("--even needs an even length, not '%s'", v);
        return -1;
    }
    *(const char **)dest = v;
    return 0;
}

static const char *even;
static char stderr_text[4096];

/* stderr into a temporary file until captured() puts it back and keeps
 * what was written in stderr_text. */
static char capture_path[256];
static int capture_saved = -1;

static void capture(void)
{
    int fd = test_tmpfile("test_cli", capture_path, sizeof capture_path);
    assert_true(fd >= 0);
    fflush(stderr);
    capture_saved = dup(2);
    assert_true(capture_saved >= 0 && dup2(fd, 2) == 2);
    close(fd);
}

static const char *captured(void)
{
    fflush(stderr);
    dup2(capture_saved, 2);
    close(capture_saved);
    char *s = slurp(capture_path);
    unlink(capture_path);
    snprintf(stderr_text, sizeof stderr_text, "%s", s ? s : "");
    free(s);
    return stderr_text;
}

/* Parses argv (NULL-terminated) as subcommand sub with the made-up table;
 * what went to stderr is in stderr_text. */
static int parse_as(const char *sub, vals *v, const char *operand, char **argv)
{
    memset(v, 0, sizeof *v);
    const sc_opt opts[] = {
        {"data", .kind = SC_OPT_STR, .dest = &v->data, .required = "--data DIR"},
        {"out", 'o', SC_OPT_STR, .dest = &v->out, .nonempty = 1},
        {"seed", .kind = SC_OPT_U64, .dest = &v->seed, .given = &v->have_seed, .max = UINT64_MAX},
        {"epochs", .kind = SC_OPT_U64, .dest = &v->epochs, .min = 1, .max = 100000},
        {"max-steps", .kind = SC_OPT_I64, .dest = &v->steps, .min = 1, .max = INT64_MAX},
        {"threads", .kind = SC_OPT_INT, .dest = &v->threads, .min = 1, .max = 1024},
        {"flag", .kind = SC_OPT_FLAG, .dest = &v->flag},
        {"optimizer", .kind = SC_OPT_CHOICE, .dest = &v->choice, .choices = choices},
        {"lr", .kind = SC_OPT_NUM, .dest = &v->lr, .lo = 0, .lo_open = 1, .hi = 1e3},
        {"weight-decay", .kind = SC_OPT_NUM, .dest = &v->wd, .lo = 0, .hi = 1e6},
        {"even", .kind = SC_OPT_CUSTOM, .dest = &even, .check = check_even},
    };
    const sc_cmdline cl = {sub, opts, (int)(sizeof opts / sizeof *opts), fake_usage, operand, 0};
    int argc = 0, usage_before = usage_calls;
    while (argv[argc])
        argc++;
    capture();
    optind = 0;
    int status = -1, done = sc_cli_parse(&cl, argc, argv, &status);
    captured();
    assert_int_equal(done, status != 0 || usage_calls != usage_before);
    return done ? status : 0;
}

/* rc 2, the message as the first line, the usage hint as the second. */
static void expect_usage_error(const char *sub, char **argv, const char *message)
{
    vals v;
    assert_int_equal(parse_as(sub, &v, NULL, argv), SC_EXIT_USAGE);
    char *want = xprintf("%s: error: %s\nRun '%s %s --help' for usage.\n", program_invocation_short_name, message,
                         program_invocation_short_name, sub);
    assert_string_equal(stderr_text, want);
    free(want);
}

#define ARGV(...) ((char *[]){"sub", __VA_ARGS__, NULL})

static void test_values(void **st)
{
    (void)st;
    vals v;
    char **argv = ARGV("--data", "d", "-o", "out", "--seed=18446744073709551615", "--epochs", "7",
                       "--max-steps", "9223372036854775807", "--threads", "1024", "--flag", "--optimizer",
                       "adam", "--lr", "1e3", "--weight-decay", "0", "--even", "ab");
    assert_int_equal(parse_as("sub", &v, NULL, argv), 0);
    assert_string_equal(stderr_text, "");
    assert_string_equal(v.data, "d");
    assert_string_equal(v.out, "out");
    assert_true(v.seed == UINT64_MAX);
    assert_int_equal(v.have_seed, 1);
    assert_int_equal(v.epochs, 7);
    assert_true(v.steps == INT64_MAX);
    assert_int_equal(v.threads, 1024);
    assert_int_equal(v.flag, 1);
    assert_int_equal(v.choice, 1);
    assert_true(v.lr == 1e3);
    assert_true(v.wd == 0);
    assert_string_equal(even, "ab");
    assert_int_equal(optind, 21); /* no operands: all of argv read */
}

static void test_help(void **st)
{
    (void)st;
    vals v;
    int before = usage_calls;
    assert_int_equal(parse_as("sub", &v, NULL, ARGV("--help")), 0);
    assert_int_equal(parse_as("sub", &v, NULL, ARGV("-h", "--bogus")), 0);
    assert_int_equal(usage_calls, before + 2);
    assert_string_equal(stderr_text, "");
}

static void test_one_message_per_kind(void **st)
{
    (void)st;
    const struct {
        char **argv;
        const char *message;
    } cases[] = {
        {ARGV("--data", "d", "--bogus"), "unknown option '--bogus'"},
        {ARGV("--data", "d", "-x"), "unknown option '-x'"},
        {ARGV("--data", "d", "--seed"), "option '--seed' needs a value"},
        {ARGV("--data", "d", "-o"), "option '-o' needs a value"},
        {ARGV("--data", "d", "--out", ""), "option '--out' needs a value"},
        {ARGV("--data", "d", "--seed", "x"), "--seed needs an integer, not 'x'"},
        {ARGV("--data", "d", "--seed", "-1"), "--seed needs an integer, not '-1'"},
        {ARGV("--data", "d", "--seed", "12ab"), "--seed needs an integer, not '12ab'"},
        {ARGV("--data", "d", "--seed", "18446744073709551616"),
         "--seed must be from 0 to 18446744073709551615, not '18446744073709551616'"},
        {ARGV("--data", "d", "--epochs", "0"), "--epochs must be from 1 to 100000, not '0'"},
        {ARGV("--data", "d", "--max-steps", "0"), "--max-steps must be at least 1, not '0'"},
        {ARGV("--data", "d", "--max-steps", "9223372036854775808"),
         "--max-steps must be at least 1, not '9223372036854775808'"},
        {ARGV("--data", "d", "--threads", "1025"), "--threads must be from 1 to 1024, not '1025'"},
        {ARGV("--data", "d", "--lr", "fast"), "--lr needs a finite number, not 'fast'"},
        {ARGV("--data", "d", "--lr", "nan"), "--lr needs a finite number, not 'nan'"},
        {ARGV("--data", "d", "--lr", "0"), "--lr must be greater than 0 and at most 1000, not '0'"},
        {ARGV("--data", "d", "--weight-decay", "-1"), "--weight-decay must be from 0 to 1e+06, not '-1'"},
        {ARGV("--data", "d", "--optimizer", "lars"), "--optimizer must be sgd or adam, not 'lars'"},
        {ARGV("--data", "d", "--even", "abc"), "--even needs an even length, not 'abc'"},
        {ARGV("--seed", "1"), "sub needs --data DIR"},
        {ARGV("--data", ""), "sub needs --data DIR"},
        {ARGV("--data", "d", "extra"), "sub takes no arguments, got 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_usage_error("sub", cases[i].argv, cases[i].message);
}

static void test_same_wording_everywhere(void **st)
{
    (void)st;
    /* The same mistake in two subcommands: the same message, each with
     * its own usage hint. */
    expect_usage_error("train", ARGV("--data", "d", "--threads", "0"), "--threads must be from 1 to 1024, not '0'");
    expect_usage_error("eval", ARGV("--data", "d", "--threads", "0"), "--threads must be from 1 to 1024, not '0'");
    expect_usage_error("train", ARGV("--data", "d", "--nope"), "unknown option '--nope'");
    expect_usage_error("finetune", ARGV("--data", "d", "--nope"), "unknown option '--nope'");
}

static void test_operand(void **st)
{
    (void)st;
    vals v;
    assert_int_equal(parse_as("dump", &v, "OUT", ARGV("--data", "d", "file", "--seed", "3")), 0);
    assert_string_equal(stderr_text, "");
    assert_int_equal(v.seed, 3);
    assert_int_equal(optind, 5); /* getopt moved the operand last */
    assert_int_equal(parse_as("dump", &v, "OUT", ARGV("--data", "d")), SC_EXIT_USAGE);
    assert_non_null(strstr(stderr_text, "error: dump needs OUT\n"));
    assert_int_equal(parse_as("dump", &v, "OUT", ARGV("--data", "d", "a", "b")), SC_EXIT_USAGE);
    assert_non_null(strstr(stderr_text, "error: dump takes one argument, OUT, got 'b' too\n"));
}

static void test_after_parse_checks(void **st)
{
    (void)st;
    capture();
    int a = sc_cli_check_source("eval", "x", 1), b = sc_cli_check_source("eval", NULL, 0),
        c = sc_cli_check_source("eval", "x", 0);
    const char *s = captured();
    assert_int_equal(a, SC_EXIT_USAGE);
    assert_int_equal(b, SC_EXIT_USAGE);
    assert_int_equal(c, 0);
    assert_non_null(strstr(s, "error: --ckpt and --random-init exclude each other\nRun '"));
    assert_non_null(strstr(s, "error: eval needs --ckpt FILE or --random-init\nRun '"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_one_message_per_kind),
        cmocka_unit_test(test_same_wording_everywhere),
        cmocka_unit_test(test_operand),
        cmocka_unit_test(test_after_parse_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
