/* check-data --data DIR: validates a dataset directory in the STL-10
 * layout and prints what it holds (cli.md). */
#define _GNU_SOURCE
#include <errno.h> /* program_invocation_short_name */
#include <stdio.h>
#include <string.h>

#include "cli.h"
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
    const char *dir = NULL;
    const sc_opt opts[] = {
        {"data", .kind = SC_OPT_STR, .dest = &dir, .required = "--data DIR"},
    };
    const sc_cmdline cl = {"check-data", opts, 1, usage, NULL, 0};
    int rc;
    if (sc_cli_parse(&cl, argc, argv, &rc))
        return rc;
    char err[1024];
    if (sc_stl10_check(dir, stdout, err, sizeof err)) {
        fflush(stdout);
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    return 0;
}
