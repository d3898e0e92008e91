// Command gen regenerates the Go code for the event schemas in proto/: it compiles every .proto
// file under <root>/cryptopill with protocompile (no system protoc) and runs protoc-gen-go's
// generator as a library, writing the .pb.go files under <root> by Go import path.
//
// It is its own module so the proto module's consumers do not inherit the compiler's
// dependencies; its google.golang.org/protobuf version must equal the one proto/go.mod
// requires, which it checks before writing anything. The output is byte-for-byte
// deterministic, so `make proto-check` can diff it.
//
// Usage (from the repository root; `make proto` does this):
//
//	GOWORK=off go -C proto/internal/gen run . -root "$PWD/proto"
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	gengo "google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	protobufModule = "google.golang.org/protobuf"
	// sourceDir holds the .proto files, relative to the root.
	sourceDir = "cryptopill"
	// goModule is the proto module's path; generated files land under the root by the rest of
	// their Go import path (protoc-gen-go's module= option).
	goModule = "cryptopill.dev/jobs/proto"
)

func main() {
	root := flag.String("root", ".", "the proto module directory (holds go.mod and "+sourceDir+"/)")
	flag.Parse()
	if err := run(context.Background(), *root); err != nil {
		fmt.Fprintln(os.Stderr, "proto gen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, root string) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	if err := checkRuntimeVersion(root); err != nil {
		return err
	}
	sources, err := findSources(root)
	if err != nil {
		return err
	}
	if len(sources) == 0 {
		return fmt.Errorf("no .proto files under %s", filepath.Join(root, sourceDir))
	}

	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: []string{root},
		}),
		// Comments are carried into the generated code.
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := compiler.Compile(ctx, sources...)
	if err != nil {
		return fmt.Errorf("compile: %w", err)
	}

	req := &pluginpb.CodeGeneratorRequest{
		FileToGenerate: sources,
		Parameter:      proto.String("module=" + goModule),
	}
	seen := map[string]bool{}
	for _, f := range files {
		addWithDeps(req, f, seen)
	}

	plugin, err := protogen.Options{}.New(req)
	if err != nil {
		return fmt.Errorf("protogen: %w", err)
	}
	for _, f := range plugin.Files {
		if f.Generate {
			gengo.GenerateFile(plugin, f)
		}
	}
	plugin.SupportedFeatures = gengo.SupportedFeatures
	plugin.SupportedEditionsMinimum = gengo.SupportedEditionsMinimum
	plugin.SupportedEditionsMaximum = gengo.SupportedEditionsMaximum
	resp := plugin.Response()
	if resp.Error != nil {
		return fmt.Errorf("protoc-gen-go: %s", resp.GetError())
	}
	return writeOutputs(root, resp.GetFile())
}

// addWithDeps appends f's dependencies, then f, to the request: protoc-gen-go expects every file
// after the files it imports.
func addWithDeps(req *pluginpb.CodeGeneratorRequest, f protoreflect.FileDescriptor, seen map[string]bool) {
	if seen[f.Path()] {
		return
	}
	seen[f.Path()] = true
	imports := f.Imports()
	for i := 0; i < imports.Len(); i++ {
		addWithDeps(req, imports.Get(i).FileDescriptor, seen)
	}
	fdp := protodesc.ToFileDescriptorProto(f)
	req.ProtoFile = append(req.ProtoFile, fdp)
	if slices.Contains(req.FileToGenerate, f.Path()) {
		// Source-retention options only; keeps parity with what protoc hands a plugin.
		req.SourceFileDescriptors = append(req.SourceFileDescriptors, proto.Clone(fdp).(*descriptorpb.FileDescriptorProto))
	}
}

// findSources lists the .proto files under root/sourceDir as import paths relative to root,
// sorted, so the output does not depend on directory order.
func findSources(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(filepath.Join(root, sourceDir), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".proto") {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	slices.Sort(out)
	return out, err
}

// writeOutputs writes the generated files that changed and removes generated .pb.go files that
// no longer have a source.
func writeOutputs(root string, outs []*pluginpb.CodeGeneratorResponse_File) error {
	want := map[string]bool{}
	for _, f := range outs {
		if f.GetInsertionPoint() != "" {
			return fmt.Errorf("insertion points are not supported (%s)", f.GetName())
		}
		path := filepath.Join(root, filepath.FromSlash(f.GetName()))
		want[path] = true
		content := []byte(f.GetContent())
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", mustRel(root, path))
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (d.Name() == "internal" || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".pb.go") || want[path] {
			return nil
		}
		generated, err := isGenerated(path)
		if err != nil || !generated {
			return err
		}
		fmt.Println("removed", mustRel(root, path))
		return os.Remove(path)
	})
}

func isGenerated(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && line == "" {
		return false, nil
	}
	return strings.HasPrefix(line, "// Code generated by protoc-gen-go"), nil
}

// checkRuntimeVersion fails when this generator's protoc-gen-go differs from the protobuf runtime
// the proto module builds against: generated code is only guaranteed to work with its own
// runtime version, and a silent mismatch would make proto-check flap between machines.
func checkRuntimeVersion(root string) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build info; run with `go run`")
	}
	var genVersion string
	for _, dep := range info.Deps {
		if dep.Path == protobufModule {
			genVersion = dep.Version
			if dep.Replace != nil {
				genVersion = dep.Replace.Version
			}
		}
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return err
	}
	var rtVersion string
	for _, line := range strings.Split(string(gomod), "\n") {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require"))
		if len(fields) >= 2 && fields[0] == protobufModule {
			rtVersion = fields[1]
		}
	}
	if rtVersion == "" {
		return fmt.Errorf("%s/go.mod does not require %s", root, protobufModule)
	}
	if genVersion != rtVersion {
		return fmt.Errorf("generator uses %s %s but %s/go.mod requires %s; align proto/internal/gen/go.mod",
			protobufModule, genVersion, root, rtVersion)
	}
	return nil
}

func mustRel(root, path string) string {
	rel, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return rel
}
