package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = errors.New("help requested")

// flagSet is a flag.FlagSet that also reads PULSE_* environment variables
// and prints its usage with double dashes and the variable of each flag.
type flagSet struct {
	*flag.FlagSet
	synopsis, about, examples string
	out                       io.Writer
	env                       func(string) (string, bool)
	defaults                  map[string]string // shown instead of the flag's zero default
}

func newFlagSet(name, synopsis, about, examples string, out io.Writer, env func(string) (string, bool)) *flagSet {
	fs := &flagSet{
		FlagSet:  flag.NewFlagSet(name, flag.ContinueOnError),
		synopsis: synopsis, about: about, examples: examples,
		out: out, env: env, defaults: map[string]string{},
	}
	fs.SetOutput(io.Discard) // errors are returned, usage printed by us
	return fs
}

// envName is the environment variable of a flag: PULSE_ and the flag's
// name in upper case with dashes as underscores.
func envName(flagName string) string {
	return "PULSE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses the arguments, then sets every flag that the command line
// left alone from its environment variable. It takes no positional
// arguments.
func (fs *flagSet) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.printUsage()
			return errHelp
		}
		return usageErrorf("%v", err)
	}
	if fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		name := envName(f.Name)
		if v, ok := fs.env(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageErrorf("invalid value %q for --%s from %s: %v", v, f.Name, name, e)
			}
		}
	})
	return err
}

func (fs *flagSet) printUsage() {
	fmt.Fprintf(fs.out, "Usage: pulse %s [flags]\n\n%s\n\nFlags:\n", fs.Name(), fs.synopsis)
	tw := tabwriter.NewWriter(fs.out, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		def := f.DefValue
		if d, ok := fs.defaults[f.Name]; ok {
			def = d
		}
		if def != "" && def != "false" && def != "[]" {
			help += " (default " + def + ")"
		}
		if arg != "" {
			arg = " " + strings.ToUpper(arg)
		}
		fmt.Fprintf(tw, "  --%s%s\t%s\t%s\n", f.Name, arg, envName(f.Name), help)
	})
	tw.Flush()
	if fs.about != "" {
		fmt.Fprintf(fs.out, "\n%s\n", fs.about)
	}
	fmt.Fprintf(fs.out, "\nExamples:\n%s", fs.examples)
}

// logFlags are the logging flags every long-running command has.
type logFlags struct {
	level, format string
}

func (l *logFlags) register(fs *flagSet) {
	fs.StringVar(&l.level, "log-level", "info", "least severe `level` logged: debug, info, warn or error")
	fs.StringVar(&l.format, "log-format", "text", "log `format`: text or json")
}

// logger returns the logger the flags ask for, writing to w.
func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: want text or json", l.format)
}

// durationsAsText writes durations as "1.5s" rather than nanoseconds, in
// JSON logs as in text ones.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// metaFlag collects repeated --meta key=value flags.
type metaFlag map[string]string

func (m metaFlag) String() string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

// Set takes "key=value", or several separated by commas (as an environment
// variable gives them).
func (m metaFlag) Set(s string) error {
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		m[k] = v
	}
	return nil
}
