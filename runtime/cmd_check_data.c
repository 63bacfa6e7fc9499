/* check-data --data DIR: validates a dataset directory in the STL-10
 * layout and prints what it holds (cli.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "sc_stl10.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s check-data --data DIR\n"
            "\n"
            "Validates a dataset directory in the STL-10 binary layout (train_X.bin,\n"
            "train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin, fold_indices.txt):\n"
            "file sizes, labels, fold indices. Prints the size of every split.\n"
            "\n"
            "options:\n"
            "  --data DIR   the dataset directory\n"
            "  -h, --help   show this help\n"
            "\n"
            "exit status: 0 the data is valid, 1 it is not (the first problem is printed),\n"
            "2 bad usage\n",
            program_invocation_short_name);
}

int sc_cmd_check_data(int argc, char **argv)
{
    const char *prog = program_invocation_short_name;
    enum { OPT_DATA = 256 };
    static const struct option longopts[] = {
        {"data", required_argument, 0, OPT_DATA},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *dir = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA: dir = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "%s: error: option '%s' needs a value\n", prog, argv[optind - 1]);
            fprintf(stderr, "Run '%s check-data --help' for usage.\n", prog);
            return 2;
        default:
            fprintf(stderr, "%s: error: unknown option '%s'\n", prog, argv[optind - 1]);
            fprintf(stderr, "Run '%s check-data --help' for usage.\n", prog);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: error: check-data takes no arguments, got '%s'\n", prog, argv[optind]);
        return 2;
    }
    if (!dir || !*dir) {
        fprintf(stderr, "%s: error: check-data needs --data DIR\n", prog);
        fprintf(stderr, "Run '%s check-data --help' for usage.\n", prog);
        return 2;
    }
    char err[1024];
    if (sc_stl10_check(dir, stdout, err, sizeof err)) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", prog, err);
        return 1;
    }
    return 0;
}
