package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	operands                  string            // the positional arguments in the usage line, such as " NAME"
	aliases                   map[string]string // short name → the flag it stands for
	envNames                  map[string]string // flag → its variable, where PULSE_<NAME> would mean another command's flag
}

// alias defines -short as another name of the flag --long.
func (fs *flagSet) alias(short, long string) {
	f := fs.Lookup(long)
	fs.Var(f.Value, short, "short for --"+long)
	if fs.aliases == nil {
		fs.aliases = map[string]string{}
	}
	fs.aliases[short] = long
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

// envOf is the environment variable of the flag name in this flag set:
// envName(name), unless envNames gives another.
func (fs *flagSet) envOf(name string) string {
	if v, ok := fs.envNames[name]; ok {
		return v
	}
	return envName(name)
}

// parse parses the arguments, then sets every flag that the command line
// left alone from its environment variable. It takes no positional
// arguments.
func (fs *flagSet) parse(args []string) error {
	_, err := fs.parseArgs(args, nil)
	return err
}

// parseArgs is parse for a command that takes the positional arguments
// named in want (such as NAME), before, after or between its flags. It
// returns them, and refuses too many or too few.
func (fs *flagSet) parseArgs(args []string, want []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.printUsage()
				return nil, errHelp
			}
			return nil, usageErrorf("%s", doubleDash(err.Error()))
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(positional) > len(want):
		return nil, usageErrorf("unexpected argument %q", positional[len(want)])
	case len(positional) < len(want):
		return nil, usageErrorf("missing %s", want[len(positional)])
	}
	return positional, fs.fromEnv()
}

// fromEnv sets the flags that the command line left alone from their
// environment variables.
func (fs *flagSet) fromEnv() error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) {
		given[f.Name] = true
		if long, ok := fs.aliases[f.Name]; ok {
			given[long] = true
		}
	})
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if _, alias := fs.aliases[f.Name]; err != nil || given[f.Name] || alias {
			return
		}
		name := fs.envOf(f.Name)
		// An empty variable is unset: an empty Environment= line in a unit
		// file must not mean "listen on every interface".
		if v, ok := fs.env(name); ok && v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageErrorf("invalid value %q for --%s from %s: %v", v, f.Name, name, e)
			}
		}
	})
	return err
}

// doubleDash rewrites the flag package's messages, which name flags with
// one dash, to the double dashes that --help shows.
func doubleDash(msg string) string {
	for _, r := range [][2]string{
		{"flag provided but not defined: -", "unknown flag --"},
		{"for flag -", "for --"},
		{"for -", "for --"},
		{"flag needs an argument: -", "a value is missing after --"},
	} {
		if strings.Contains(msg, r[0]) {
			return strings.Replace(msg, r[0], r[1], 1)
		}
	}
	return msg
}

// duration defines a duration flag whose error says what a duration is.
func (fs *flagSet) duration(name string, value time.Duration, usage string) *time.Duration {
	p := new(time.Duration)
	*p = value
	fs.Var((*durationValue)(p), name, usage)
	return p
}

// int defines an integer flag whose error says a whole number is wanted.
func (fs *flagSet) int(name string, value int, usage string) *int {
	p := new(int)
	*p = value
	fs.Var((*intValue)(p), name, usage)
	return p
}

// bool defines a boolean flag whose error says what is wanted.
func (fs *flagSet) bool(name string, value bool, usage string) *bool {
	p := new(bool)
	*p = value
	fs.Var((*boolValue)(p), name, usage)
	return p
}

// optionalAddr defines a host:port flag that "" or "off" turns off.
func (fs *flagSet) optionalAddr(name, value, usage string) *string {
	p := new(string)
	*p = value
	fs.Var((*optionalAddrValue)(p), name, usage)
	return p
}

// choice defines a flag whose value is one of choices.
func (fs *flagSet) choice(name, value string, choices []string, usage string) *string {
	p := new(string)
	*p = value
	fs.Var(&choiceValue{value: p, choices: choices}, name, usage)
	return p
}

// addr defines a host:port flag, checked as it is set.
func (fs *flagSet) addr(name, value, usage string) *string {
	p := new(string)
	*p = value
	fs.Var((*addrValue)(p), name, usage)
	return p
}

type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 3s, 500ms or 1m30s")
	}
	*d = durationValue(v)
	return nil
}
func (d *durationValue) String() string  { return time.Duration(*d).String() }
func (d *durationValue) argName() string { return "DURATION" }

type intValue int

func (n *intValue) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want a whole number")
	}
	*n = intValue(v)
	return nil
}
func (n *intValue) String() string  { return strconv.Itoa(int(*n)) }
func (n *intValue) argName() string { return "N" }

type boolValue bool

func (b *boolValue) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*b = boolValue(v)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

// optionalAddrValue is a host:port, or "" or "off" for none.
type optionalAddrValue string

func (a *optionalAddrValue) Set(s string) error {
	if s == "" || s == "off" {
		*a = ""
		return nil
	}
	return (*addrValue)(a).Set(s)
}
func (a *optionalAddrValue) String() string  { return string(*a) }
func (a *optionalAddrValue) argName() string { return "HOST:PORT" }

// choiceValue is one of a fixed set of words.
type choiceValue struct {
	value   *string
	choices []string
}

func (c *choiceValue) Set(s string) error {
	if !slices.Contains(c.choices, s) {
		return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
	}
	*c.value = s
	return nil
}

func (c *choiceValue) String() string {
	if c.value == nil {
		return ""
	}
	return *c.value
}
func (c *choiceValue) argName() string { return strings.ToUpper(strings.Join(c.choices, "|")) }

type addrValue string

func (a *addrValue) Set(s string) error {
	_, port, err := net.SplitHostPort(s) // an empty host means every interface
	if err != nil {
		return errors.New("want host:port, such as 127.0.0.1:7070 or :7070")
	}
	if n, err := strconv.Atoi(port); port == "" || (err == nil && (n < 0 || n > 65535)) {
		return fmt.Errorf("port %q of %q is not a port number", port, s)
	}
	*a = addrValue(s)
	return nil
}
func (a *addrValue) String() string  { return string(*a) }
func (a *addrValue) argName() string { return "HOST:PORT" }

func (fs *flagSet) printUsage() {
	fmt.Fprintf(fs.out, "Usage: pulse %s%s [flags]\n\n%s\n\nFlags:\n", fs.Name(), fs.operands, fs.synopsis)
	tw := tabwriter.NewWriter(fs.out, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, help := flag.UnquoteUsage(f)
		if v, ok := f.Value.(interface{ argName() string }); ok && arg == "value" {
			arg = v.argName()
		}
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
		if _, ok := f.Value.(interface{ IsBoolFlag() bool }); ok {
			arg = ""
		}
		dash, env := "--", fs.envOf(f.Name)
		if _, alias := fs.aliases[f.Name]; alias { // such as -o: no variable of its own
			dash, env = "-", ""
		}
		fmt.Fprintf(tw, "  %s%s%s\t%s\t%s\n", dash, f.Name, arg, env, help)
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

// Set takes "key=value", or several separated by commas as an environment
// variable gives them ("region=eu, role=web"). A comma inside a value is
// kept when what follows it is not another key=value ("tags=a,b").
func (m metaFlag) Set(s string) error {
	parts := strings.Split(s, ",")
	for _, p := range parts {
		if !strings.Contains(p, "=") {
			parts = []string{s} // one pair whose value has commas
			break
		}
	}
	for _, kv := range parts {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return fmt.Errorf("want key=value, got %q", kv)
		}
		m[k] = v
	}
	return nil
}
