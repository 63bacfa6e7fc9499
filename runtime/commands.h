/* The subcommands of the training binary beyond main.c's own, one file
 * each (runtime/cmd_NAME.c). Each takes the subcommand's argv (argv[0] is
 * the subcommand name, getopt's optind already reset by main) and returns
 * the exit status of cli.md: 0 success, 1 bad input, 2 bad usage, 3
 * internal error. Messages go to stderr as "PROGRAM: ...", PROGRAM being
 * glibc's program_invocation_short_name (the basename of argv[0], as
 * main.c's own messages). */
#ifndef SC_COMMANDS_H
#define SC_COMMANDS_H

int sc_cmd_train(int argc, char **argv);
int sc_cmd_check_data(int argc, char **argv);
int sc_cmd_eval(int argc, char **argv);
int sc_cmd_finetune(int argc, char **argv);
int sc_cmd_export(int argc, char **argv);
int sc_cmd_encode(int argc, char **argv);

#endif
