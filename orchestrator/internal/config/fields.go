package config

import (
	"reflect"
	"strings"
	"sync"
	"time"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// leaf is one configurable value, found by reflection over the yaml tags.
type leaf struct {
	path   string // dotted YAML path, e.g. "notebook.mem_limit"
	env    string // SWARMHUB_NOTEBOOK_MEM_LIMIT
	index  []int  // for reflect.Value.FieldByIndex on a Config
	typ    reflect.Type
	help   string
	secret bool   // may also come from a file: see file
	file   string // for a secret: path of its "<key>_file" sibling
}

var (
	leavesOnce sync.Once
	leaves     []leaf
	leafByPath map[string]*leaf
	// sections are the paths of nested structs ("notebook", "auth.ldap").
	sections map[string]bool
)

func leafFields() []leaf {
	leavesOnce.Do(func() {
		sections = map[string]bool{}
		walkType(reflect.TypeFor[Config](), "", nil)
		leafByPath = make(map[string]*leaf, len(leaves))
		for i := range leaves {
			leafByPath[leaves[i].path] = &leaves[i]
		}
		for i := range leaves {
			if leaves[i].secret {
				leaves[i].file = leaves[i].path + "_file"
				if leafByPath[leaves[i].file] == nil {
					panic("config: secret " + leaves[i].path + " has no _file sibling field")
				}
			}
		}
	})
	return leaves
}

func walkType(t reflect.Type, prefix string, index []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		idx := append(append([]int(nil), index...), i)
		if f.Type.Kind() == reflect.Struct {
			sections[path] = true
			walkType(f.Type, path, idx)
			continue
		}
		leaves = append(leaves, leaf{
			path:   path,
			env:    EnvName(path),
			index:  idx,
			typ:    f.Type,
			help:   f.Tag.Get("help"),
			secret: f.Tag.Get("secret") == "true",
		})
	}
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	return name
}

// fieldByYAMLName finds the struct field of t whose yaml tag is name.
func fieldByYAMLName(t reflect.Type, name string) (int, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return i, true
		}
	}
	return 0, false
}

// EnvName is the environment variable that overrides the key at path:
// SWARMHUB_ and the upper-cased path with dots turned into underscores.
func EnvName(path string) string {
	return "SWARMHUB_" + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// UnknownEnv returns the SWARMHUB_* variables in environ (as from
// os.Environ) that match no key, to be logged as warnings: other tools share
// the prefix, so they are not errors.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	for _, l := range leafFields() {
		known[l.env] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SWARMHUB_") && !known[name] {
			out = append(out, name)
		}
	}
	return out
}
