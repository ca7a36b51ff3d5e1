package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Key documents one configuration key.
type Key struct {
	Path    string // dotted YAML path, e.g. "notebook.mem_limit"
	Type    string // string, bool, int, number, duration, size, list, map
	Default string // as written in YAML; "" shown as ""
	Env     string // overriding environment variable
	Help    string
	Secret  bool // also readable from a file: Env+"_FILE" and the "<key>_file" sibling
}

// Keys lists every key in file order, derived from Config's struct tags.
func Keys() []Key {
	def := reflect.ValueOf(Default())
	var out []Key
	for _, l := range leafFields() {
		out = append(out, Key{
			Path:    l.path,
			Type:    typeName(l.typ),
			Default: formatValue(def.FieldByIndex(l.index)),
			Env:     l.env,
			Help:    l.help,
			Secret:  l.secret,
		})
	}
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == byteSizeType:
		return "size"
	}
	switch t.Kind() {
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list"
	case reflect.Map:
		return "map"
	default:
		return t.Kind().String()
	}
}

// formatValue writes a value the way the YAML file would.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return fmtDuration(time.Duration(v.Int()))
	case v.Type() == byteSizeType:
		return ByteSize(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = v.Index(i).String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		parts := []string{}
		for _, k := range sortedKeys(v.Interface().(map[string]string)) {
			parts = append(parts, k+": "+v.MapIndex(reflect.ValueOf(k)).String())
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return fmt.Sprint(v.Interface())
	}
}

// fmtDuration writes 2m rather than time.Duration's 2m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// MarkdownTable is the README's reference of every key.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| key | type | default | environment variable | meaning |\n")
	b.WriteString("|---|---|---|---|---|\n")
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, k := range Keys() {
		env := "`" + k.Env + "`"
		help := k.Help
		if k.Secret {
			env += " or `" + k.Env + "_FILE`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s | %s |\n", k.Path, k.Type, cell(k.Default), env, cell(help))
	}
	return b.String()
}

// MarshalYAML writes the configuration with every key, durations and sizes
// in their readable forms, so the output parses back to the same Config.
// Secrets are included: marshal Redacted() for anything shown to people.
func (c Config) MarshalYAML() (any, error) {
	return encodeStruct(reflect.ValueOf(c))
}

func encodeStruct(v reflect.Value) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := range v.NumField() {
		name := yamlName(v.Type().Field(i))
		if name == "" {
			continue
		}
		fv := v.Field(i)
		var val *yaml.Node
		var err error
		switch {
		case fv.Kind() == reflect.Struct:
			val, err = encodeStruct(fv)
		case fv.Type() == durationType:
			val = strNode(fmtDuration(time.Duration(fv.Int())))
		case fv.Type() == byteSizeType:
			val = strNode(ByteSize(fv.Int()).String())
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct:
			val = &yaml.Node{Kind: yaml.SequenceNode}
			for j := range fv.Len() {
				item, ierr := encodeStruct(fv.Index(j))
				if ierr != nil {
					return nil, ierr
				}
				val.Content = append(val.Content, item)
			}
		case fv.Kind() == reflect.Slice:
			val = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for j := range fv.Len() {
				val.Content = append(val.Content, strNode(fv.Index(j).String()))
			}
		case fv.Kind() == reflect.Map:
			val = &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
			for _, k := range sortedKeys(fv.Interface().(map[string]string)) {
				val.Content = append(val.Content, strNode(k), strNode(fv.MapIndex(reflect.ValueOf(k)).String()))
			}
		default:
			val = &yaml.Node{}
			err = val.Encode(fv.Interface())
		}
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		n.Content = append(n.Content, strNode(name), val)
	}
	return n, nil
}
