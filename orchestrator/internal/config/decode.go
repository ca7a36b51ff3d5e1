package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads the YAML file at path ("" = defaults only), applies SWARMHUB_*
// environment overrides, reads the secrets named by *_file keys, and
// validates. Every problem is reported at once as *Errors.
func Load(path string, getenv func(string) string) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Default(), fmt.Errorf("read config file: %w", err)
		}
	}
	c, errs := decode(data, getenv)
	if len(errs) > 0 && errs[0].Key == "" {
		return c, &errs // not YAML at all: nothing else is meaningful
	}
	errs = append(errs, c.readSecretFiles()...)
	errs = append(errs, c.readServiceTokens()...)
	return c, finish(&c, errs)
}

// Parse is Load for YAML already in memory, except that secrets named by
// *_file keys are not read (their keys are kept, and count as set), so a
// configuration can be checked on a machine without the secret files.
func Parse(data []byte, getenv func(string) string) (Config, error) {
	c, errs := decode(data, getenv)
	if len(errs) > 0 && errs[0].Key == "" {
		return c, &errs
	}
	return c, finish(&c, errs)
}

// finish validates c and merges the result with the earlier errors, leaving
// out validation errors for keys that already failed to decode: their
// default value stands in and would only mislead.
func finish(c *Config, errs Errors) error {
	leafFields() // fills leafByPath
	failed := map[string]bool{}
	for _, e := range errs {
		failed[e.Key] = true
		// An unreadable password_file also explains a missing password.
		if l := leafByPath[strings.TrimSuffix(e.Key, "_file")]; l != nil && l.secret {
			failed[l.path] = true
		}
	}
	var verrs *Errors
	if err := c.Validate(); errors.As(err, &verrs) {
		for _, e := range *verrs {
			if !failed[e.Key] && !mentionsAny(e.Msg, failed) {
				errs = append(errs, e)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &errs
}

// mentionsAny reports whether msg names one of the keys as a whole word,
// as cross-key messages do ("larger than notebook.mem_limit 2G").
func mentionsAny(msg string, keys map[string]bool) bool {
	word := func(b byte) bool { return b == '_' || b == '.' || ('a' <= b && b <= 'z') }
	for k := range keys {
		if leafByPath[k] == nil {
			continue // unknown keys hold no value another key is compared with
		}
		for off := 0; ; {
			i := strings.Index(msg[off:], k)
			if i < 0 {
				break
			}
			start, end := off+i, off+i+len(k)
			if (start == 0 || !word(msg[start-1])) && (end == len(msg) || !word(msg[end])) {
				return true
			}
			off = end
		}
	}
	return false
}

func decode(data []byte, getenv func(string) string) (Config, Errors) {
	c := Default()
	root, err := parseYAML(data)
	if err != nil {
		return c, Errors{{Msg: err.Error()}}
	}
	d := &decoder{}
	if root != nil {
		d.decodeStruct(root, reflect.ValueOf(&c).Elem(), "")
	}
	if getenv != nil {
		d.applyEnv(&c, getenv)
	}
	return c, d.errs
}

// parseYAML returns the top-level mapping, or nil for an empty document.
func parseYAML(data []byte) (root *yaml.Node, err error) {
	// yaml.v3 has panicked on malformed input before (CVE-2022-28948); a
	// configuration file must never crash the process that checks it.
	defer func() {
		if r := recover(); r != nil {
			root, err = nil, fmt.Errorf("not valid YAML: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("not valid YAML: the file holds more than one document (---); keep one")
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 0 {
		return nil, nil
	}
	return &doc, nil
}

type decoder struct {
	errs Errors
	env  string // set while decoding the value of this environment variable
}

func (d *decoder) fail(path string, n *yaml.Node, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	switch {
	case d.env != "":
		msg += " (from " + d.env + ")"
	case n != nil && n.Line > 0:
		msg += fmt.Sprintf(" (line %d)", n.Line)
	}
	d.errs = append(d.errs, FieldError{Key: path, Msg: msg})
}

// resolve follows aliases. The walk is bounded by the depth of Config's
// types, so even self-referencing anchors cannot make it loop.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n != nil && n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return resolve(n.Content[0])
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null") ||
		(n.Kind == yaml.DocumentNode && len(n.Content) == 0)
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping of keys"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	default:
		return "something else"
	}
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	if isNull(n) {
		return // an empty section keeps its defaults
	}
	if n.Kind != yaml.MappingNode {
		where := "the file"
		if path != "" {
			where = path
		}
		d.fail(path, n, "%s must be a mapping of keys (key: value), not %s", where, kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.fail(path, n.Content[i], "keys must be plain names")
			continue
		}
		full := joinPath(path, k.Value)
		if k.Value == "<<" {
			d.fail(full, k, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		idx, ok := fieldByYAMLName(v.Type(), k.Value)
		if !ok {
			d.fail(full, k, "unknown key%s", suggest(v.Type(), path, k.Value))
			continue
		}
		if seen[k.Value] {
			d.fail(full, k, "set twice; keep one")
			continue
		}
		seen[k.Value] = true
		d.decodeValue(n.Content[i+1], v.Field(idx), full)
	}
}

func (d *decoder) decodeValue(n *yaml.Node, fv reflect.Value, path string) {
	n = resolve(n)
	t := fv.Type()
	switch {
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, fv, path)
	case t.Kind() == reflect.Slice:
		d.decodeList(n, fv, path)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, fv, path)
	default:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if isNull(n) {
			fv.Set(reflect.Zero(t))
			return
		}
		if err := setScalar(fv, s); err != nil {
			d.fail(path, n, "%v", err)
		}
	}
}

// scalar returns the text of a single value; null gives "".
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n, "expected a single value, not %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func setScalar(fv reflect.Value, s string) error {
	switch t := fv.Type(); {
	case t == durationType:
		v, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration; write a number with a unit, e.g. 90s, 15m or 8h (days: 168h is 7 days)", s)
		}
		fv.SetInt(int64(v))
	case t == byteSizeType:
		v, err := ParseByteSize(s)
		if err != nil {
			return fmt.Errorf("%q is not a memory size; write bytes or a number with K, M, G or T, e.g. 512M or 2G", s)
		}
		fv.SetInt(int64(v))
	case t.Kind() == reflect.String:
		fv.SetString(s)
	case t.Kind() == reflect.Bool:
		v, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		fv.SetBool(v)
	case t.Kind() == reflect.Int:
		v, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
		if err != nil || v != int64(int(v)) {
			return fmt.Errorf("%q is not a whole number", s)
		}
		fv.SetInt(v)
	case t.Kind() == reflect.Float64:
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%q is not a number", s)
		}
		fv.SetFloat(v)
	default:
		panic("config: unsupported field type " + t.String())
	}
	return nil
}

func (d *decoder) decodeList(n *yaml.Node, fv reflect.Value, path string) {
	if isNull(n) {
		fv.Set(reflect.Zero(fv.Type()))
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n, "expected a list, e.g. [a, b] or one \"- item\" per line, not %s", kindName(n))
		return
	}
	if fv.Type().Elem().Kind() == reflect.Struct {
		if len(n.Content) == 0 {
			fv.Set(reflect.Zero(fv.Type()))
			return
		}
		out := reflect.MakeSlice(fv.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			item = resolve(item)
			ipath := fmt.Sprintf("%s[%d]", path, i)
			if item == nil || item.Kind != yaml.MappingNode {
				d.fail(ipath, item, "every entry must be a mapping of keys (key: value)")
				continue
			}
			d.decodeStruct(item, out.Index(i), ipath)
		}
		fv.Set(out)
		return
	}
	var out []string
	ok := true
	for _, item := range n.Content {
		item = resolve(item)
		if item == nil || item.Kind != yaml.ScalarNode || isNull(item) {
			d.fail(path, item, "every list entry must be a single non-empty value")
			ok = false
			continue
		}
		out = append(out, item.Value)
	}
	if ok {
		fv.Set(reflect.ValueOf(out))
	}
}

func (d *decoder) decodeMap(n *yaml.Node, fv reflect.Value, path string) {
	if isNull(n) {
		fv.Set(reflect.Zero(fv.Type()))
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(path, n, "expected a mapping (key: value), not %s", kindName(n))
		return
	}
	var out map[string]string
	ok := true
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || isNull(k) {
			d.fail(path, n.Content[i], "map keys must be plain names")
			ok = false
			continue
		}
		val, vok := d.scalar(v, path+"."+k.Value)
		if !vok {
			ok = false
			continue
		}
		if _, dup := out[k.Value]; dup {
			d.fail(path, k, "%q is set twice; keep one", k.Value)
			ok = false
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k.Value] = val
	}
	if ok {
		fv.Set(reflect.ValueOf(out))
	}
}

// applyEnv overrides every key whose SWARMHUB_* variable is non-empty.
// Lists are comma-separated, maps k=v,k2=v2; a value starting with [ or {
// is read as YAML instead, for entries that contain commas (LDAP DNs).
func (d *decoder) applyEnv(c *Config, getenv func(string) string) {
	root := reflect.ValueOf(c).Elem()
	for _, l := range leafFields() {
		raw := getenv(l.env)
		if raw == "" {
			continue
		}
		d.env = l.env
		fv := root.FieldByIndex(l.index)
		trimmed := strings.TrimSpace(raw)
		var n *yaml.Node
		switch {
		case (l.typ.Kind() == reflect.Slice && strings.HasPrefix(trimmed, "[")) ||
			(l.typ.Kind() == reflect.Map && strings.HasPrefix(trimmed, "{")):
			var err error
			if n, err = parseYAML([]byte(trimmed)); err != nil || n == nil {
				d.fail(l.path, nil, "%q is not a valid YAML flow value", raw)
				continue
			}
		case l.typ.Kind() == reflect.Slice:
			n = &yaml.Node{Kind: yaml.SequenceNode}
			for _, item := range strings.Split(raw, ",") {
				if item = strings.TrimSpace(item); item != "" {
					n.Content = append(n.Content, strNode(item))
				}
			}
		case l.typ.Kind() == reflect.Map:
			n = &yaml.Node{Kind: yaml.MappingNode}
			for _, item := range strings.Split(raw, ",") {
				if item = strings.TrimSpace(item); item == "" {
					continue
				}
				k, v, ok := strings.Cut(item, "=")
				if !ok || strings.TrimSpace(k) == "" {
					d.fail(l.path, nil, "%q is not key=value; write k=v,k2=v2", item)
					n = nil
					break
				}
				n.Content = append(n.Content, strNode(strings.TrimSpace(k)), strNode(strings.TrimSpace(v)))
			}
		default:
			n = strNode(raw)
		}
		if n != nil {
			d.decodeValue(n, fv, l.path)
		}
	}
	d.env = ""
	// A secret set by environment replaces the file's value in either form,
	// so SWARMHUB_REDIS_PASSWORD wins over password_file in the YAML.
	for _, l := range leafFields() {
		if !l.secret {
			continue
		}
		file := leafByPath[l.file]
		inline, fromFile := getenv(l.env) != "", getenv(file.env) != ""
		switch {
		case inline && !fromFile:
			root.FieldByIndex(file.index).SetString("")
		case fromFile && !inline:
			root.FieldByIndex(l.index).SetString("")
		}
	}
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

// readSecretFiles replaces each *_file key by the content of its file
// (trailing newlines trimmed). Pairs with both forms set are left for
// Validate to report.
func (c *Config) readSecretFiles() Errors {
	var errs Errors
	root := reflect.ValueOf(c).Elem()
	for _, l := range leafFields() {
		if !l.secret {
			continue
		}
		file := leafByPath[l.file]
		inline, name := root.FieldByIndex(l.index), root.FieldByIndex(file.index)
		if name.String() == "" || inline.String() != "" {
			continue
		}
		data, err := os.ReadFile(name.String())
		if err != nil {
			errs = append(errs, FieldError{Key: file.path, Msg: fmt.Sprintf("cannot read the secret: %v", err)})
			continue
		}
		secret := strings.TrimRight(string(data), "\r\n")
		if secret == "" {
			errs = append(errs, FieldError{Key: file.path, Msg: fmt.Sprintf("the secret file %s is empty", name.String())})
			continue
		}
		inline.SetString(secret)
		name.SetString("")
	}
	return errs
}

// readServiceTokens reads each service's api_token_file (trailing
// newlines trimmed).
func (c *Config) readServiceTokens() Errors {
	var errs Errors
	for i := range c.Services {
		sv := &c.Services[i]
		if sv.APITokenFile == "" {
			continue // Validate reports it
		}
		key := fmt.Sprintf("services[%d].api_token_file", i)
		data, err := os.ReadFile(sv.APITokenFile)
		if err != nil {
			errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf("cannot read the token: %v", err)})
			continue
		}
		if sv.APIToken = strings.TrimRight(string(data), "\r\n"); sv.APIToken == "" {
			errs = append(errs, FieldError{Key: key, Msg: fmt.Sprintf("the token file %s is empty", sv.APITokenFile)})
		}
	}
	return errs
}

// suggest offers the nearest sibling key, or the same key in another section.
func suggest(t reflect.Type, path, name string) string {
	best, bestDist := "", 3
	for i := range t.NumField() {
		cand := yamlName(t.Field(i))
		if cand == "" {
			continue
		}
		if dist := levenshtein(strings.ToLower(name), cand); dist < bestDist {
			best, bestDist = joinPath(path, cand), dist
		}
	}
	if best != "" {
		return "; did you mean " + best + "?"
	}
	var elsewhere []string
	for _, l := range leafFields() {
		if l.path == name || strings.HasSuffix(l.path, "."+name) {
			elsewhere = append(elsewhere, l.path)
		}
	}
	for s := range sections {
		if s == name || strings.HasSuffix(s, "."+name) {
			elsewhere = append(elsewhere, s)
		}
	}
	if len(elsewhere) > 0 {
		sort.Strings(elsewhere)
		return "; did you mean " + strings.Join(elsewhere, " or ") + "?"
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
