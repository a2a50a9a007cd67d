// Command embedd is a self-hosted embedding server and its tools. Each subcommand lives in its own
// file and registers itself from init(), so new tools plug in without editing this dispatcher.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

type command struct {
	name, summary string
	run           func(args []string) error
}

var commands = map[string]command{}

// register adds a subcommand; it is called from the init functions of the subcommands' files.
func register(name, summary string, run func(args []string) error) {
	if _, dup := commands[name]; dup {
		panic("embedd: subcommand registered twice: " + name) // a programming error, found at start-up
	}
	commands[name] = command{name: name, summary: summary, run: run}
}

// usageError marks an error in how a command was invoked: it exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// printFlagHelp answers a command's -h: its usage text, then its flags.
func printFlagHelp(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprintln(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func init() {
	register("help", "show the subcommands", func(args []string) error {
		printHelp(os.Stdout)
		return nil
	})
	register("version", "print the version", func(args []string) error {
		fmt.Println("embedd", version)
		return nil
	})
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "usage: embedd <command> [flags] [args]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'embedd <command> -h' for a command's flags.")
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches to a subcommand and maps its error to an exit status: 0 ok, 1 failure, 2 usage.
func run(args []string) int {
	if len(args) == 0 {
		printHelp(os.Stderr)
		return 2
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" {
		name = "help"
	}
	if name == "-version" || name == "--version" {
		name = "version"
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "embedd: unknown command %q (see 'embedd help')\n", name)
		return 2
	}
	if err := cmd.run(args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "embedd %s: %v\n", name, err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}
