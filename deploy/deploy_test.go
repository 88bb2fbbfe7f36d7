package deploy_test

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"iter"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// The roles bookingd knows (cmd/bookingd/config.go).
var roles = []string{"api", "projector", "worker"}

// ---------------------------------------------------------------------------
// Dockerfile

// stage is one FROM … of the Dockerfile with its instructions.
type stage struct {
	name, image  string
	instructions []*dockerfile.Node
	env          map[string]string // ENV, in order of appearance
}

type image struct {
	stages []stage
	args   map[string]string // ARGs before the first FROM, with their defaults
}

func (im image) final() stage { return im.stages[len(im.stages)-1] }

func (im image) stage(name string) (stage, bool) {
	for _, s := range im.stages {
		if s.name == name {
			return s, true
		}
	}
	return stage{}, false
}

// envMap is what the buildkit lexer expands variables from.
type envMap map[string]string

func (e envMap) Get(k string) (string, bool) { v, ok := e[k]; return v, ok }
func (e envMap) Keys() []string              { return slices.Sorted(maps.Keys(e)) }

// lex expands Dockerfile words; a Lex is not safe for concurrent use.
func lex() *shell.Lex { return shell.NewLex('\\') }

// args returns the words after an instruction (FROM image AS name → image, AS, name).
func args(n *dockerfile.Node) []string {
	var out []string
	for a := n.Next; a != nil; a = a.Next {
		out = append(out, a.Value)
	}
	return out
}

// execForm returns an instruction's JSON array form (ENTRYPOINT ["a", "b"]).
func execForm(t testing.TB, n *dockerfile.Node) []string {
	t.Helper()
	require.Truef(t, n.Attributes["json"], "line %d: %s must use the exec (JSON) form", n.StartLine, n.Original)
	return args(n)
}

func parseDockerfile(t testing.TB) image {
	t.Helper()
	res, err := dockerfile.Parse(bytes.NewReader(readFile(t, "Dockerfile")))
	require.NoError(t, err)
	im := image{args: map[string]string{}}
	for _, n := range res.AST.Children {
		switch instr := strings.ToLower(n.Value); {
		case instr == "arg" && len(im.stages) == 0:
			k, v, _ := strings.Cut(n.Next.Value, "=")
			im.args[k] = v
		case instr == "from":
			a := args(n)
			require.NotEmpty(t, a, "FROM without an image")
			img, _, err := lex().ProcessWord(a[0], envMap(im.args))
			require.NoError(t, err)
			s := stage{image: img, env: map[string]string{}}
			if len(a) == 3 && strings.EqualFold(a[1], "AS") {
				s.name = a[2]
			}
			im.stages = append(im.stages, s)
		default:
			require.NotEmpty(t, im.stages, "line %d: %s before the first FROM", n.StartLine, n.Original)
			s := &im.stages[len(im.stages)-1]
			s.instructions = append(s.instructions, n)
			if instr == "env" {
				// key, value, separator triplets
				for kv := n.Next; kv != nil && kv.Next != nil; kv = kv.Next.Next.Next {
					v, _, err := lex().ProcessWord(kv.Next.Value, envMap(s.env))
					require.NoError(t, err, n.Original)
					s.env[kv.Value] = v
					if kv.Next.Next == nil {
						break
					}
				}
			}
		}
	}
	require.NotEmpty(t, im.stages)
	return im
}

func instructions(s stage, name string) []*dockerfile.Node {
	var out []*dockerfile.Node
	for _, n := range s.instructions {
		if strings.EqualFold(n.Value, name) {
			out = append(out, n)
		}
	}
	return out
}

// goBuild finds the build stage's `go build` command line: the words of
// the command, the environment it runs with (ENV plus inline assignments).
func goBuild(t testing.TB, s stage) (words []string, env map[string]string) {
	t.Helper()
	for _, run := range instructions(s, "run") {
		if run.Attributes["json"] {
			continue
		}
		all, err := lex().ProcessWords(run.Next.Value, envMap(s.env))
		require.NoError(t, err)
		for cmd := range splitCommands(all) {
			env := maps.Clone(s.env)
			for len(cmd) > 0 && strings.Contains(cmd[0], "=") && !strings.HasPrefix(cmd[0], "-") {
				k, v, _ := strings.Cut(cmd[0], "=")
				env[k] = v
				cmd = cmd[1:]
			}
			if len(cmd) >= 2 && cmd[0] == "go" && cmd[1] == "build" {
				return cmd, env
			}
		}
	}
	t.Fatalf("no RUN go build … in stage %q", s.name)
	return nil, nil
}

// splitCommands splits a shell command's words at && and ;.
func splitCommands(words []string) iter.Seq[[]string] {
	return func(yield func([]string) bool) {
		var cur []string
		for _, w := range slices.Concat(words, []string{"&&"}) {
			if w == "&&" || w == ";" {
				if len(cur) > 0 && !yield(cur) {
					return
				}
				cur = nil
				continue
			}
			cur = append(cur, w)
		}
	}
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	im := parseDockerfile(t)
	require.GreaterOrEqual(t, len(im.stages), 2, "multi-stage: a build stage and a runtime stage")

	build, ok := im.stage("build")
	require.True(t, ok, "a stage named build")
	assert.Regexp(t, `^golang:\d+\.\d+(\.\d+)?-bookworm$`, build.image)
	// The image's Go must be able to build go.mod's `go` line.
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readFile(t, "../go.mod"))
	require.NotNil(t, goLine, "go.mod has a go line")
	assert.True(t, strings.HasPrefix(build.image, "golang:"+string(goLine[1])),
		"build image %s must be Go %s (go.mod)", build.image, goLine[1])

	// The web app is built in its own stage and copied to where bookingd
	// embeds it from (web/web.go: dist/app) before go build.
	webStage, ok := im.stage("web")
	require.True(t, ok, "a stage named web builds the web app")
	var builds bool
	for _, n := range instructions(webStage, "run") {
		builds = builds || strings.Contains(n.Original, "npm run build")
	}
	assert.True(t, builds, "the web stage runs npm run build")
	var copied bool
	for _, n := range instructions(build, "copy") {
		copied = copied || (strings.Contains(n.Original, "--from=web") && strings.HasSuffix(strings.TrimSpace(n.Original), "./web/dist/app"))
	}
	assert.True(t, copied, "the build stage copies the built app into web/dist/app")

	words, env := goBuild(t, build)
	assert.Equal(t, "0", env["CGO_ENABLED"], "static binaries: CGO_ENABLED=0")
	assert.Contains(t, words, "-trimpath")
	assert.Equal(t, "-s -w", flagValue(words, "-ldflags"))
	assert.Contains(t, words, "./cmd/bookingd")
	assert.Contains(t, words, "./cmd/bookingctl")

	final := im.final()
	assert.Equal(t, "gcr.io/distroless/static-debian12:nonroot", final.image)
	users := instructions(final, "user")
	require.NotEmpty(t, users, "the final stage sets USER")
	user := users[len(users)-1].Next.Value
	name, _, _ := strings.Cut(user, ":")
	assert.NotContains(t, []string{"", "root", "0"}, name, "USER %s must not be root", user)

	var exposed []string
	for _, n := range instructions(final, "expose") {
		exposed = append(exposed, args(n)...)
	}
	assert.Contains(t, exposed, "8080")

	copies := instructions(final, "copy")
	require.NotEmpty(t, copies)
	assert.Contains(t, copies[0].Flags, "--from=build")
	bookingd, bookingctl := binaryPaths(t, final)
	assert.Equal(t, "bookingd", path.Base(bookingd))
	assert.Equal(t, "bookingctl", path.Base(bookingctl))

	ep := instructions(final, "entrypoint")
	require.Len(t, ep, 1)
	assert.Equal(t, []string{bookingd}, execForm(t, ep[0]))

	hc := instructions(final, "healthcheck")
	require.Len(t, hc, 1)
	require.Equal(t, "CMD", hc[0].Next.Value, "HEALTHCHECK CMD …")
	// HEALTHCHECK CMD [...]: the command is the exec form after CMD.
	assert.Equal(t, []string{bookingd, "healthcheck"}, args(hc[0].Next))
}

// binaryPaths returns where the final stage puts bookingd and bookingctl
// (COPY --from=build a b DIR/).
func binaryPaths(t testing.TB, final stage) (bookingd, bookingctl string) {
	t.Helper()
	for _, c := range instructions(final, "copy") {
		a := args(c)
		dest := a[len(a)-1]
		for _, src := range a[:len(a)-1] {
			p := dest
			if strings.HasSuffix(dest, "/") {
				p = dest + path.Base(src)
			}
			switch path.Base(p) {
			case "bookingd":
				bookingd = p
			case "bookingctl":
				bookingctl = p
			}
		}
	}
	require.NotEmpty(t, bookingd, "the final stage copies bookingd")
	require.NotEmpty(t, bookingctl, "the final stage copies bookingctl")
	return bookingd, bookingctl
}

func flagValue(words []string, name string) string {
	for i, w := range words {
		if w == name && i+1 < len(words) {
			return words[i+1]
		}
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestDockerfileBuildsStaticBinaries runs the Dockerfile's own go build line
// (its flags, packages and ENV) into a temporary directory, then checks that
// the binaries are static, carry the flags, and are the real programs.
func TestDockerfileBuildsStaticBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bookingd and bookingctl")
	}
	t.Parallel()
	im := parseDockerfile(t)
	build, _ := im.stage("build")
	words, env := goBuild(t, build)

	out := t.TempDir()
	i := slices.Index(words, "-o")
	require.GreaterOrEqual(t, i, 0, "go build -o DIR/")
	require.True(t, strings.HasSuffix(words[i+1], "/"), "-o names a directory for both binaries")
	words = slices.Clone(words)
	words[i+1] = out + string(filepath.Separator)

	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, words[0], words[1:]...)
	cmd.Dir = repoRoot(t)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	got, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s\n%s", strings.Join(words, " "), got)

	for _, name := range []string{"bookingd", "bookingctl"} {
		bin := filepath.Join(out, name)
		f, err := elf.Open(bin)
		require.NoError(t, err)
		for _, p := range f.Progs {
			assert.NotEqualf(t, elf.PT_INTERP, p.Type, "%s has a program interpreter: not static", name)
			assert.NotEqualf(t, elf.PT_DYNAMIC, p.Type, "%s has a dynamic section: not static", name)
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		assert.Empty(t, libs, "%s links shared libraries", name)
		_, err = f.Symbols()
		assert.ErrorIs(t, err, elf.ErrNoSymbols, "%s: -ldflags -s strips the symbol table", name)
		for _, s := range f.Sections {
			assert.False(t, strings.HasPrefix(s.Name, ".debug_") || strings.HasPrefix(s.Name, ".zdebug_"),
				"%s: -ldflags -w leaves no DWARF (%s)", name, s.Name)
		}
		require.NoError(t, f.Close())

		info, err := buildinfo.ReadFile(bin)
		require.NoError(t, err)
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		assert.Equal(t, "0", settings["CGO_ENABLED"], name)
		assert.Equal(t, "true", settings["-trimpath"], name) // (which keeps -ldflags out of the build info)
		assert.Equal(t, "github.com/bookingledger/ledger/cmd/"+name, info.Path)
	}

	bookingd := filepath.Join(out, "bookingd")
	run := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bookingd, args...).CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		}
		require.NoError(t, err, "%s", out)
		return 0, string(out)
	}
	t.Run("healthcheck refused", func(t *testing.T) {
		code, out := run("healthcheck", "--url", "http://127.0.0.1:1/")
		assert.NotZero(t, code, out)
		assert.Contains(t, out, "healthcheck")
		assert.Contains(t, out, "127.0.0.1:1")
	})
	t.Run("healthcheck ready", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
			}
		}))
		defer srv.Close()
		code, out := run("healthcheck", "--url", srv.URL+"/readyz")
		assert.Zero(t, code, out)
		code, out = run("healthcheck", "--url", srv.URL+"/other")
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "503")
	})
	t.Run("bookingctl", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, filepath.Join(out, "bookingctl"), "help").CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "migrate")
	})
}

// ---------------------------------------------------------------------------
// docker compose

// composeEnv is what deploy/.env would hold.
var composeEnv = map[string]string{
	"POSTGRES_PASSWORD":    "pg-secret",
	"REPLICATION_PASSWORD": "repl-secret",
	"JWT_SECRET":           "0123456789abcdef0123456789abcdef-test",
}

func loadCompose(t testing.TB, env map[string]string) (*composetypes.Project, error) {
	t.Helper()
	dir, err := filepath.Abs(".")
	require.NoError(t, err)
	return loader.LoadWithContext(t.Context(), composetypes.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: filepath.Join(dir, "docker-compose.yml")}},
		Environment: maps.Clone(env), // the loader adds to it
	}, func(o *loader.Options) { o.SetProjectName("bookingledger", true) })
}

// bookingdServices are the compose services that run bookingd, by role.
var bookingdServices = map[string]string{"api-1": "api", "api-2": "api", "projector": "projector", "worker": "worker"}

func TestCompose(t *testing.T) {
	t.Parallel()
	p, err := loadCompose(t, composeEnv)
	require.NoError(t, err)

	assert.ElementsMatch(t, []string{"postgres", "postgres-replica", "redis", "nats", "migrate",
		"api-1", "api-2", "projector", "worker", "nginx"}, slices.Collect(maps.Keys(p.Services)))

	im := parseDockerfile(t)
	bookingd, bookingctl := binaryPaths(t, im.final())
	readsEnv := envNamesRead(t, "../cmd/bookingd")
	root := repoRoot(t)

	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			// Every bind mount exists in deploy/.
			for _, v := range s.Volumes {
				if v.Type == composetypes.VolumeTypeBind {
					assert.FileExists(t, v.Source)
				}
			}
			// A dependency is waited for: healthy, or finished for the one-shot migration.
			for dep, d := range s.DependsOn {
				require.Contains(t, p.Services, dep)
				want := composetypes.ServiceConditionHealthy
				if dep == "migrate" {
					want = composetypes.ServiceConditionCompletedSuccessfully
				}
				assert.Equal(t, want, d.Condition, "depends_on %s", dep)
			}
			if name == "migrate" {
				require.NotNil(t, s.HealthCheck)
				assert.True(t, s.HealthCheck.Disable, "a one-shot job has no health to check")
				return
			}
			require.NotNil(t, s.HealthCheck, "every long-running service has a healthcheck")
			assert.False(t, s.HealthCheck.Disable)
			require.NotEmpty(t, s.HealthCheck.Test)
			assert.Equal(t, "CMD", s.HealthCheck.Test[0])
		})
	}

	t.Run("bookingd", func(t *testing.T) {
		for name, role := range bookingdServices {
			s := p.Services[name]
			require.NotNil(t, s.Build, name)
			assert.Equal(t, root, s.Build.Context, name)
			assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile), name)
			assert.Equal(t, []string{bookingd, "healthcheck", "--url", "http://127.0.0.1:8080/readyz"},
				[]string(s.HealthCheck.Test[1:]), name)
			assert.Equal(t, role, env(s, "BOOKINGD_ROLES"), name)
			assert.Equal(t, ":8080", env(s, "HTTP_ADDR"), name)
			assert.Equal(t, "postgres", urlHost(t, env(s, "DATABASE_URL")), name)
			assert.Equal(t, composetypes.ServiceConditionCompletedSuccessfully, s.DependsOn["migrate"].Condition, name)
			assert.Equal(t, composetypes.ServiceConditionHealthy, s.DependsOn["postgres"].Condition, name)
			for k := range s.Environment {
				assert.Contains(t, readsEnv, k, "%s sets %s, which bookingd does not read", name, k)
			}
			switch role {
			case "api":
				assert.Equal(t, "postgres-replica", urlHost(t, env(s, "DATABASE_REPLICA_URLS")), name)
				assert.Equal(t, "redis", urlHost(t, env(s, "REDIS_URL")), name)
				assert.Equal(t, composeEnv["JWT_SECRET"], env(s, "JWT_SECRET"), name)
				assert.Equal(t, "true", env(s, "TRUST_PROXY_HEADERS"), name)
				assert.Contains(t, s.DependsOn, "postgres-replica", name)
				assert.Contains(t, s.DependsOn, "redis", name)
			case "worker":
				assert.Equal(t, "nats", urlHost(t, env(s, "NATS_URL")), name)
				assert.Contains(t, s.DependsOn, "nats", name)
				assert.NotContains(t, s.Environment, "JWT_SECRET", "only the API needs the signing key")
			default:
				assert.NotContains(t, s.Environment, "JWT_SECRET", "only the API needs the signing key")
			}
		}
		// Every bookingd service runs the same image.
		assert.Equal(t, p.Services["migrate"].Image, p.Services["api-1"].Image)
		assert.Equal(t, p.Services["migrate"].Image, p.Services["worker"].Image)
	})

	t.Run("migrate", func(t *testing.T) {
		s := p.Services["migrate"]
		assert.Equal(t, []string{bookingctl}, []string(s.Entrypoint))
		assert.Equal(t, []string{"migrate"}, []string(s.Command))
		assert.Equal(t, "postgres", urlHost(t, env(s, "DATABASE_URL")))
		assert.Equal(t, env(p.Services["api-1"], "DATABASE_URL"), env(s, "DATABASE_URL"))
		assert.Contains(t, []string{"no", ""}, s.Restart)
	})

	t.Run("postgres", func(t *testing.T) {
		primary, replica := p.Services["postgres"], p.Services["postgres-replica"]
		for _, s := range []composetypes.ServiceConfig{primary, replica} {
			assert.True(t, strings.HasPrefix(s.Image, "postgres:15"), s.Image)
			assert.Equal(t, "pg_isready", s.HealthCheck.Test[1])
		}
		assert.Equal(t, "booking", env(primary, "POSTGRES_USER"))
		assert.Equal(t, "booking", env(primary, "POSTGRES_DB"))
		assert.Equal(t, composeEnv["POSTGRES_PASSWORD"], env(primary, "POSTGRES_PASSWORD"))
		assert.Contains(t, strings.Join(primary.Command, " "), "wal_level=replica")
		assert.Contains(t, strings.Join(primary.Command, " "), "max_wal_senders=")
		// The replication role, slot and pg_hba line are made at initdb time.
		init := mountOf(t, primary, "/docker-entrypoint-initdb.d/")
		script := string(readFile(t, init))
		assert.Contains(t, script, "REPLICATION")
		assert.Contains(t, script, "pg_create_physical_replication_slot")
		assert.Contains(t, script, "host replication")
		// The replica clones the primary with pg_basebackup -R, with the same credentials.
		require.Len(t, replica.Entrypoint, 2)
		entry := mountOf(t, replica, replica.Entrypoint[1])
		script = string(readFile(t, entry))
		assert.Contains(t, script, "pg_basebackup")
		assert.Contains(t, script, "--write-recovery-conf")
		assert.Equal(t, env(primary, "REPLICATION_PASSWORD"), env(replica, "REPLICATION_PASSWORD"))
		assert.Equal(t, env(primary, "REPLICATION_USER"), env(replica, "REPLICATION_USER"))
		assert.Equal(t, env(primary, "REPLICATION_SLOT"), env(replica, "REPLICATION_SLOT"))
		assert.Equal(t, "postgres", env(replica, "PRIMARY_HOST"))
		assert.Equal(t, composetypes.ServiceConditionHealthy, replica.DependsOn["postgres"].Condition)
	})

	t.Run("redis and nats", func(t *testing.T) {
		assert.Equal(t, []string{"CMD", "redis-cli", "ping"}, []string(p.Services["redis"].HealthCheck.Test))
		nats := p.Services["nats"]
		assert.Contains(t, nats.Command, "--jetstream")
		assert.Contains(t, strings.Join(nats.HealthCheck.Test, " "), "/healthz")
	})

	t.Run("nginx", func(t *testing.T) {
		s := p.Services["nginx"]
		conf := parseNginx(t, readFile(t, mountOf(t, s, "/etc/nginx/nginx.conf")))
		for name, role := range bookingdServices {
			if role == "api" {
				assert.Equal(t, composetypes.ServiceConditionHealthy, s.DependsOn[name].Condition, name)
			}
		}
		checkNginx(t, conf)
	})
}

// TestComposeNeedsSecrets: without deploy/.env compose refuses to start,
// naming the variable, rather than run on a default secret; the example
// file provides every variable the compose file requires.
func TestComposeNeedsSecrets(t *testing.T) {
	t.Parallel()
	for name := range composeEnv {
		t.Run(name, func(t *testing.T) {
			env := maps.Clone(composeEnv)
			delete(env, name)
			_, err := loadCompose(t, env)
			require.Error(t, err)
			assert.Contains(t, err.Error(), name)
		})
	}
	t.Run(".env.example", func(t *testing.T) {
		example, err := dotenv.Read(".env.example")
		require.NoError(t, err)
		for name := range composeEnv {
			assert.NotEmpty(t, example[name], name)
		}
		_, err = loadCompose(t, example)
		require.NoError(t, err)
	})
	t.Run("ignored by git", func(t *testing.T) {
		assert.Contains(t, strings.Fields(string(readFile(t, ".gitignore"))), ".env")
	})
}

func env(s composetypes.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func urlHost(t testing.TB, raw string) string {
	t.Helper()
	first, _, _ := strings.Cut(raw, ",")
	u, err := url.Parse(first)
	require.NoError(t, err, raw)
	return u.Hostname()
}

// mountOf returns the file in deploy/ that a service mounts at target (or
// into the directory target).
func mountOf(t testing.TB, s composetypes.ServiceConfig, target string) string {
	t.Helper()
	for _, v := range s.Volumes {
		if v.Type == composetypes.VolumeTypeBind && (v.Target == target || strings.HasSuffix(target, "/") && strings.HasPrefix(v.Target, target)) {
			assert.True(t, v.ReadOnly, "%s is mounted read-only", v.Target)
			return v.Source
		}
	}
	t.Fatalf("%s mounts nothing at %s", s.Name, target)
	return ""
}

// ---------------------------------------------------------------------------
// nginx.conf

// directive is one nginx directive, with its block when it has one.
type directive struct {
	name  string
	args  []string
	block []directive
}

func (d directive) find(name string) []directive {
	var out []directive
	for _, c := range d.block {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func (d directive) one(t testing.TB, name string) directive {
	t.Helper()
	found := d.find(name)
	require.Lenf(t, found, 1, "one %s in %s %v", name, d.name, d.args)
	return found[0]
}

// parseNginx reads nginx's configuration syntax: directives end with ; or
// a { block }, # starts a comment, quotes group words.
func parseNginx(t testing.TB, src []byte) directive {
	t.Helper()
	var tokens []string
	s := string(src)
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ';' || c == '{' || c == '}':
			tokens = append(tokens, string(c))
			i++
		case c == '"' || c == '\'':
			j := strings.IndexByte(s[i+1:], c)
			require.GreaterOrEqual(t, j, 0, "unterminated quote")
			tokens = append(tokens, s[i+1:i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n;{}", rune(s[j])) {
				j++
			}
			tokens = append(tokens, s[i:j])
			i = j
		}
	}
	var parse func(pos int, depth int) ([]directive, int)
	parse = func(pos int, depth int) ([]directive, int) {
		var out []directive
		var cur []string
		for pos < len(tokens) {
			tok := tokens[pos]
			pos++
			switch tok {
			case ";":
				require.NotEmpty(t, cur, "empty directive")
				out = append(out, directive{name: cur[0], args: cur[1:]})
				cur = nil
			case "{":
				require.NotEmpty(t, cur, "block without a name")
				block, next := parse(pos, depth+1)
				out = append(out, directive{name: cur[0], args: cur[1:], block: block})
				cur, pos = nil, next
			case "}":
				require.Positive(t, depth, "unbalanced }")
				require.Empty(t, cur, "directive %v without ;", cur)
				return out, pos
			default:
				cur = append(cur, tok)
			}
		}
		require.Zero(t, depth, "unclosed block")
		require.Empty(t, cur, "directive %v without ;", cur)
		return out, pos
	}
	block, _ := parse(0, 0)
	return directive{name: "main", block: block}
}

func checkNginx(t *testing.T, conf directive) {
	http := conf.one(t, "http")
	upstreams := http.find("upstream")
	require.Len(t, upstreams, 1)
	up := upstreams[0]
	var servers []string
	for _, s := range up.find("server") {
		servers = append(servers, s.args[0])
	}
	var apis []string
	for name, role := range bookingdServices {
		if role == "api" {
			apis = append(apis, name+":8080")
		}
	}
	assert.ElementsMatch(t, apis, servers, "the upstream lists every API instance")

	srv := http.one(t, "server")
	headers := map[string]string{}
	for _, h := range srv.find("proxy_set_header") {
		require.Len(t, h.args, 2)
		headers[h.args[0]] = h.args[1]
	}
	// bookingd takes the last X-Forwarded-For hop: the one nginx appends.
	assert.Equal(t, "$proxy_add_x_forwarded_for", headers["X-Forwarded-For"])
	assert.Equal(t, "$host", headers["Host"])
	assert.Contains(t, headers, "X-Request-Id")

	locations := map[string]directive{}
	for _, l := range srv.find("location") {
		locations[strings.Join(l.args, " ")] = l
	}
	// /metrics and the profiler are not public.
	for _, loc := range []string{"= /metrics", "^~ /debug/"} {
		l, ok := locations[loc]
		require.True(t, ok, "location %s", loc)
		assert.Empty(t, l.find("proxy_pass"), loc)
		assert.Equal(t, []string{"404"}, l.one(t, "return").args, loc)
	}
	// Streams pass through unbuffered, with room to stay open.
	live, ok := locations[`~ ^/api/shows/[^/]+/live$`]
	require.True(t, ok, "location for /api/shows/{id}/live")
	assert.Equal(t, []string{"http://" + up.args[0]}, live.one(t, "proxy_pass").args)
	assert.Equal(t, []string{"off"}, live.one(t, "proxy_buffering").args)
	assert.Regexp(t, `^\d+[hm]$`, live.one(t, "proxy_read_timeout").args[0])
	re := regexp.MustCompile(strings.TrimPrefix(live.args[1], "^"))
	assert.True(t, re.MatchString("/api/shows/42/live"))
	assert.False(t, re.MatchString("/api/shows/42/events"))
	// Everything else goes to the API.
	assert.Equal(t, []string{"http://" + up.args[0]}, locations["/"].one(t, "proxy_pass").args)
}

// ---------------------------------------------------------------------------
// Kubernetes

// kustomization is the part of kustomize's Kustomization this base uses,
// decoded strictly so that a misspelt field fails.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
		IncludeTemplates bool              `json:"includeTemplates"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

const (
	secretName    = "bookingledger-secrets"
	secretExample = "secret.example.yaml"
)

// manifests decodes every file of k8s/ but kustomization.yaml strictly into
// its API type.
func manifests(t testing.TB) map[string]any {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	out := map[string]any{}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		data := readFile(t, f)
		require.NotContains(t, string(data), "\n---", "%s: one object per file", base)
		var tm metav1.TypeMeta
		require.NoError(t, yaml.Unmarshal(data, &tm), base)
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "batch/v1 Job":
			obj = &batchv1.Job{}
		case "autoscaling/v2 HorizontalPodAutoscaler":
			obj = &autoscalingv2.HorizontalPodAutoscaler{}
		case "policy/v1 PodDisruptionBudget":
			obj = &policyv1.PodDisruptionBudget{}
		case "v1 Service":
			obj = &corev1.Service{}
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1 Secret":
			obj = &corev1.Secret{}
		case "v1 Namespace":
			obj = &corev1.Namespace{}
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		default:
			t.Fatalf("%s: unexpected apiVersion %q kind %q", base, tm.APIVersion, tm.Kind)
		}
		require.NoError(t, yaml.UnmarshalStrict(data, obj), base)
		meta, err := objectMeta(obj)
		require.NoError(t, err)
		require.NotEmpty(t, meta.Name, "%s: metadata.name", base)
		assert.Empty(t, validation.IsDNS1123Subdomain(meta.Name), "%s: metadata.name %q", base, meta.Name)
		out[base] = obj
	}
	return out
}

func objectMeta(obj any) (metav1.ObjectMeta, error) {
	if o, ok := obj.(interface{ GetObjectMeta() metav1.Object }); ok {
		m := o.GetObjectMeta()
		return metav1.ObjectMeta{Name: m.GetName(), Namespace: m.GetNamespace()}, nil
	}
	return metav1.ObjectMeta{}, fmt.Errorf("%T has no metadata", obj)
}

func readKustomization(t testing.TB) kustomization {
	t.Helper()
	var k kustomization
	require.NoError(t, yaml.UnmarshalStrict(readFile(t, "k8s/kustomization.yaml"), &k))
	return k
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	k := readKustomization(t)
	assert.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	assert.Equal(t, "Kustomization", k.Kind)
	assert.NotEmpty(t, k.Namespace)
	for _, r := range k.Resources {
		assert.FileExists(t, filepath.Join("k8s", r))
	}
	assert.NotContains(t, k.Resources, secretExample, "the example secret must never be applied")
	assert.Len(t, k.Resources, len(slices.Compact(slices.Sorted(slices.Values(k.Resources)))), "no resource twice")

	files, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && base != secretExample {
			assert.Contains(t, k.Resources, base, "%s is not in kustomization.yaml", base)
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	objs := manifests(t)
	k := readKustomization(t)
	readsBookingd := envNamesRead(t, "../cmd/bookingd")
	readsBookingctl := envNamesRead(t, "../cmd/bookingctl")
	var images []string
	for _, im := range k.Images {
		images = append(images, im.Name)
	}

	deployments := map[string]*appsv1.Deployment{} // by role
	var (
		configMaps []*corev1.ConfigMap
		services   []*corev1.Service
		hpas       []*autoscalingv2.HorizontalPodAutoscaler
		pdbs       []*policyv1.PodDisruptionBudget
		jobs       []*batchv1.Job
		secret     *corev1.Secret
	)
	for file, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.Deployment:
			require.NotNil(t, o.Spec.Selector, file)
			sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
			require.NoError(t, err, file)
			require.False(t, sel.Empty(), "%s: an empty selector matches every pod", file)
			assert.True(t, sel.Matches(labels.Set(o.Spec.Template.Labels)), "%s: the selector matches the template's labels", file)
			c := onlyContainer(t, file, o.Spec.Template.Spec)
			role := containerEnv(c, "BOOKINGD_ROLES")
			require.Contains(t, roles, role, "%s: BOOKINGD_ROLES", file)
			require.NotContains(t, deployments, role, "one Deployment per role")
			deployments[role] = o
		case *corev1.ConfigMap:
			configMaps = append(configMaps, o)
		case *corev1.Service:
			services = append(services, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpas = append(hpas, o)
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *batchv1.Job:
			jobs = append(jobs, o)
		case *corev1.Secret:
			require.Equal(t, secretExample, file, "secrets are not kept in the repository")
			secret = o
		}
	}
	require.Len(t, deployments, len(roles), "a Deployment per role")
	require.Len(t, configMaps, 1)
	require.NotNil(t, secret, secretExample)
	assert.Equal(t, secretName, secret.Name)
	cm := configMaps[0]
	for key := range cm.Data {
		assert.Contains(t, readsBookingd, key, "ConfigMap key %s is not read by bookingd", key)
	}

	// secretKeys checks a container's env and returns the Secret keys it reads.
	secretKeys := func(t *testing.T, c corev1.Container, reads map[string]bool) map[string]bool {
		keys := map[string]bool{}
		for _, e := range c.Env {
			assert.Contains(t, reads, e.Name, "%s is not read by the program", e.Name)
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				assert.Equal(t, secretName, ref.Name, e.Name)
				assert.Equal(t, e.Name, ref.Key, e.Name)
				assert.Contains(t, secret.StringData, ref.Key, "%s shows every key", secretExample)
				keys[ref.Key] = true
			}
		}
		return keys
	}

	for _, role := range roles {
		d := deployments[role]
		t.Run(role, func(t *testing.T) {
			spec := d.Spec.Template.Spec
			c := onlyContainer(t, d.Name, spec)
			assert.Contains(t, images, c.Image, "kustomization.yaml sets the image")
			checkPodSecurity(t, spec, c)
			checkResources(t, c)

			keys := secretKeys(t, c, readsBookingd)
			assert.True(t, keys["DATABASE_URL"], "DATABASE_URL from the Secret")
			if role == "api" {
				assert.True(t, keys["JWT_SECRET"], "JWT_SECRET from the Secret")
			} else {
				assert.False(t, keys["JWT_SECRET"], "only the API needs the signing key")
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					assert.NotRegexp(t, `(?i)secret|password|postgres://`, e.Name+"="+e.Value, "secrets come from the Secret")
				}
			}
			require.Len(t, c.EnvFrom, 1)
			require.NotNil(t, c.EnvFrom[0].ConfigMapRef)
			assert.Equal(t, cm.Name, c.EnvFrom[0].ConfigMapRef.Name)

			// Probes: readiness on /readyz, liveness and startup on /healthz,
			// all on the container's HTTP port.
			require.Len(t, c.Ports, 1)
			port := c.Ports[0]
			assert.EqualValues(t, 8080, port.ContainerPort)
			addr := containerEnv(c, "HTTP_ADDR")
			if addr == "" {
				addr = cm.Data["HTTP_ADDR"]
			}
			assert.Equal(t, ":"+strconv.Itoa(int(port.ContainerPort)), addr, "HTTP_ADDR listens on the probed port")
			for name, p := range map[string]struct {
				probe *corev1.Probe
				path  string
			}{
				"readiness": {c.ReadinessProbe, "/readyz"},
				"liveness":  {c.LivenessProbe, "/healthz"},
				"startup":   {c.StartupProbe, "/healthz"},
			} {
				require.NotNil(t, p.probe, "%s probe", name)
				require.NotNil(t, p.probe.HTTPGet, "%s probe is an HTTP GET", name)
				assert.Equal(t, p.path, p.probe.HTTPGet.Path, name)
				assert.True(t, p.probe.HTTPGet.Port.String() == port.Name || p.probe.HTTPGet.Port.IntValue() == int(port.ContainerPort),
					"%s probe port %s", name, p.probe.HTTPGet.Port.String())
			}
			assert.Equal(t, "true", d.Spec.Template.Annotations["prometheus.io/scrape"])
			assert.Equal(t, "/metrics", d.Spec.Template.Annotations["prometheus.io/path"])

			switch role {
			case "api":
				assert.Nil(t, d.Spec.Replicas, "the HorizontalPodAutoscaler owns the API's replica count")
			case "projector":
				require.NotNil(t, d.Spec.Replicas)
				assert.GreaterOrEqual(t, *d.Spec.Replicas, int32(1))
			case "worker":
				require.NotNil(t, d.Spec.Replicas)
				assert.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "expiry and payments keep going while one worker moves")
			}
		})
	}

	api := deployments["api"]
	apiPods := labels.Set(api.Spec.Template.Labels)
	otherPods := []labels.Set{labels.Set(deployments["projector"].Spec.Template.Labels), labels.Set(deployments["worker"].Spec.Template.Labels)}

	t.Run("services", func(t *testing.T) {
		var sawAPI, sawMetrics bool
		for _, s := range services {
			sel := labels.SelectorFromSet(s.Spec.Selector)
			require.NotEmpty(t, s.Spec.Selector, s.Name)
			if s.Spec.ClusterIP == corev1.ClusterIPNone {
				// Headless, for scraping every bookingd.
				sawMetrics = true
				assert.Equal(t, "true", s.Annotations["prometheus.io/scrape"], s.Name)
				assert.Equal(t, "/metrics", s.Annotations["prometheus.io/path"], s.Name)
				assert.Equal(t, "8080", s.Annotations["prometheus.io/port"], s.Name)
				for _, role := range roles {
					assert.True(t, sel.Matches(labels.Set(deployments[role].Spec.Template.Labels)), "%s scrapes the %s pods", s.Name, role)
				}
				continue
			}
			sawAPI = true
			assert.True(t, sel.Matches(apiPods), "%s selects the API pods", s.Name)
			for _, o := range otherPods {
				assert.False(t, sel.Matches(o), "%s selects only API pods", s.Name)
			}
			for _, p := range s.Spec.Ports {
				assert.Equal(t, api.Spec.Template.Spec.Containers[0].Ports[0].Name, p.TargetPort.String(), "%s targets the named port", s.Name)
			}
		}
		assert.True(t, sawAPI, "a Service for the API")
		assert.True(t, sawMetrics, "a headless Service for scraping")
	})

	t.Run("autoscaler", func(t *testing.T) {
		require.Len(t, hpas, 1)
		h := hpas[0]
		assert.Equal(t, autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: api.Name}, h.Spec.ScaleTargetRef)
		require.NotNil(t, h.Spec.MinReplicas)
		assert.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(2))
		assert.Greater(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas)
		require.Len(t, h.Spec.Metrics, 1)
		m := h.Spec.Metrics[0]
		require.Equal(t, autoscalingv2.ResourceMetricSourceType, m.Type)
		assert.Equal(t, corev1.ResourceCPU, m.Resource.Name)
		require.NotNil(t, m.Resource.Target.AverageUtilization)
		assert.Equal(t, autoscalingv2.UtilizationMetricType, m.Resource.Target.Type)
		// Utilization is relative to the request.
		assert.False(t, api.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().IsZero())
	})

	t.Run("disruption budget", func(t *testing.T) {
		require.Len(t, pdbs, 1)
		sel, err := metav1.LabelSelectorAsSelector(pdbs[0].Spec.Selector)
		require.NoError(t, err)
		assert.True(t, sel.Matches(apiPods), "the budget covers the API pods")
		for _, o := range otherPods {
			assert.False(t, sel.Matches(o), "the budget covers only the API pods")
		}
		assert.True(t, pdbs[0].Spec.MinAvailable != nil || pdbs[0].Spec.MaxUnavailable != nil)
	})

	t.Run("migration job", func(t *testing.T) {
		require.Len(t, jobs, 1)
		spec := jobs[0].Spec.Template.Spec
		assert.Contains(t, []corev1.RestartPolicy{corev1.RestartPolicyNever, corev1.RestartPolicyOnFailure}, spec.RestartPolicy)
		c := onlyContainer(t, jobs[0].Name, spec)
		assert.Contains(t, images, c.Image)
		_, bookingctl := binaryPaths(t, parseDockerfile(t).final())
		assert.Equal(t, []string{bookingctl, "migrate"}, append(slices.Clone(c.Command), c.Args...))
		checkPodSecurity(t, spec, c)
		checkResources(t, c)
		keys := secretKeys(t, c, readsBookingctl)
		assert.True(t, keys["DATABASE_URL"])
		assert.Len(t, keys, 1, "bookingctl migrate needs only DATABASE_URL")
		sel := labels.SelectorFromSet(api.Spec.Selector.MatchLabels)
		assert.False(t, sel.Matches(labels.Set(jobs[0].Spec.Template.Labels)), "the job's pods are not API pods")
	})
}

func onlyContainer(t testing.TB, name string, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	require.Len(t, spec.Containers, 1, name)
	c := spec.Containers[0]
	require.NotEmpty(t, c.Name, name)
	require.NotEmpty(t, c.Image, name)
	return c
}

func containerEnv(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func checkPodSecurity(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	require.NotNil(t, spec.SecurityContext)
	require.NotNil(t, spec.SecurityContext.RunAsNonRoot)
	assert.True(t, *spec.SecurityContext.RunAsNonRoot, "runAsNonRoot")
	if u := spec.SecurityContext.RunAsUser; u != nil {
		assert.NotZero(t, *u, "runAsUser")
	}
	if a := spec.AutomountServiceAccountToken; assert.NotNil(t, a) {
		assert.False(t, *a, "no service account token")
	}
	sc := c.SecurityContext
	require.NotNil(t, sc, "container securityContext")
	require.NotNil(t, sc.AllowPrivilegeEscalation)
	assert.False(t, *sc.AllowPrivilegeEscalation, "allowPrivilegeEscalation")
	require.NotNil(t, sc.ReadOnlyRootFilesystem)
	assert.True(t, *sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
	require.NotNil(t, sc.Capabilities)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Empty(t, sc.Capabilities.Add)
	if sc.Privileged != nil {
		assert.False(t, *sc.Privileged)
	}
}

func checkResources(t *testing.T, c corev1.Container) {
	t.Helper()
	r := c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := r.Requests[name]
		require.True(t, ok, "%s request", name)
		assert.Positive(t, req.Sign(), "%s request", name)
		lim, ok := r.Limits[name]
		require.True(t, ok, "%s limit", name)
		assert.GreaterOrEqual(t, lim.Cmp(req), 0, "%s limit below its request", name)
	}
}

// envNamesRead returns the environment variables a command reads: the
// string literals that look like one (DATABASE_URL) passed as the first
// argument of any call in its non-test files (getenv("X"), duration("X", …)).
func envNamesRead(t testing.TB, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(t, err)
	name := regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$`)
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) {
					out[s] = true
				}
			}
			return true
		})
	}
	require.Contains(t, out, "DATABASE_URL", "found the variables %s reads", dir)
	return out
}

// ---------------------------------------------------------------------------
// Grafana

// dashboardMetrics are the metrics bookingd exports (api/, cache/,
// ratelimit/, workers/, cmd/bookingd) and the Go collector's that the
// dashboard shows: every query must use only these, and each must be shown.
var dashboardMetrics = map[string]string{
	"bookingledger_http_requests_total":                "counter",
	"bookingledger_http_request_duration_seconds":      "histogram",
	"bookingledger_http_requests_in_flight":            "gauge",
	"bookingledger_booking_outcomes_total":             "counter",
	"bookingledger_version_conflict_retries_total":     "counter",
	"bookingledger_consumer_lag_events":                "gauge",
	"bookingledger_consumer_lag_seconds":               "gauge",
	"bookingledger_cache_hits_total":                   "counter",
	"bookingledger_cache_local_hits_total":             "counter",
	"bookingledger_cache_misses_total":                 "counter",
	"bookingledger_cache_errors_total":                 "counter",
	"bookingledger_ratelimit_rejections_total":         "counter",
	"bookingledger_ratelimit_degraded":                 "gauge",
	"bookingledger_ratelimit_fallback_decisions_total": "counter",
	"bookingledger_expiry_sweeps_total":                "counter",
	"bookingledger_expiry_sweep_seconds":               "histogram",
	"bookingledger_expired_holds_total":                "counter",
	"bookingledger_expiry_failures_total":              "counter",
	"bookingledger_payments_total":                     "counter",
	"bookingledger_db_pool_acquired_conns":             "gauge",
	"bookingledger_db_pool_idle_conns":                 "gauge",
	"bookingledger_db_pool_total_conns":                "gauge",
	"bookingledger_db_pool_max_conns":                  "gauge",
	"bookingledger_db_pool_acquire_wait_seconds_total": "counter",
	"bookingledger_db_pool_acquires_total":             "counter",
	"bookingledger_db_pool_empty_acquires_total":       "counter",
	"bookingledger_append_batch_commands":              "histogram",
	"bookingledger_projector_batch_events":             "histogram",
	"bookingledger_projector_batch_seconds":            "histogram",
	"go_goroutines":                                    "gauge",
	"process_resident_memory_bytes":                    "gauge",
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Datasource *grafanaDatasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string             `json:"refId"`
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string             `json:"name"`
			Type       string             `json:"type"`
			Query      any                `json:"query"`
			Datasource *grafanaDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

const dsVariable = "${DS_PROMETHEUS}"

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(readFile(t, "grafana/bookingledger-dashboard.json"), &d))
	assert.NotEmpty(t, d.UID)
	assert.NotEmpty(t, d.Title)
	assert.Positive(t, d.SchemaVersion)

	var exprs []string
	var sawDS bool
	for _, v := range d.Templating.List {
		switch {
		case v.Type == "datasource":
			assert.Equal(t, "DS_PROMETHEUS", v.Name)
			assert.Equal(t, "prometheus", v.Query)
			sawDS = true
		case v.Type == "query":
			require.NotNil(t, v.Datasource, v.Name)
			assert.Equal(t, dsVariable, v.Datasource.UID, v.Name)
			q, _ := v.Query.(map[string]any)
			s, _ := q["query"].(string)
			m := regexp.MustCompile(`^label_values\((\w+),\s*\w+\)$`).FindStringSubmatch(s)
			require.NotNil(t, m, "variable %s: label_values(metric, label)", v.Name)
			exprs = append(exprs, m[1])
		}
	}
	assert.True(t, sawDS, "a data source variable DS_PROMETHEUS")

	var panels []grafanaPanel
	for _, p := range d.Panels {
		panels = append(panels, p)
		panels = append(panels, p.Panels...)
	}
	ids := map[int]bool{}
	for _, p := range panels {
		assert.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotNil(t, p.Datasource, "panel %q has a data source", p.Title)
		assert.Equal(t, dsVariable, p.Datasource.UID, p.Title)
		assert.Equal(t, "prometheus", p.Datasource.Type, p.Title)
		assert.NotNil(t, p.GridPos, p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has queries", p.Title)
		for _, tg := range p.Targets {
			assert.NotEmpty(t, tg.RefID, p.Title)
			require.NotEmpty(t, tg.Expr, p.Title)
			if tg.Datasource != nil {
				assert.Equal(t, dsVariable, tg.Datasource.UID, p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}

	used := map[string]bool{}
	for _, e := range exprs {
		names, err := promqlMetricNames(e)
		require.NoError(t, err, e)
		require.NotEmpty(t, names, "no metric in %s", e)
		for _, n := range names {
			base, kind := n, dashboardMetrics[n]
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(n, suffix); ok && dashboardMetrics[b] == "histogram" {
					base, kind = b, "histogram"
				}
			}
			if !assert.NotEmptyf(t, kind, "%s (in %s) is not a metric bookingd exports", n, e) {
				continue
			}
			if kind == "histogram" {
				assert.NotEqual(t, base, n, "a histogram is queried by its _bucket, _sum or _count series: %s", e)
			}
			if kind == "counter" && e != n { // e == n: a label_values variable
				assert.Containsf(t, e, "rate(", "counter %s is shown as a rate: %s", n, e)
			}
			used[base] = true
		}
	}
	for m := range dashboardMetrics {
		assert.True(t, used[m], "the dashboard shows %s", m)
	}
}

func TestPromQLMetricNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ expr, want string }{
		{`sum by (route, status) (rate(a_total{x=~"$i", s="5.."}[$__rate_interval]))`, "a_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`, "h_bucket"},
		{`x / on (instance) group_left y offset 5m`, "x y"},
		{`go_goroutines{instance=~"$instance"} and on (instance) b`, "go_goroutines b"},
		{`max without (pod) (g)`, "g"},
		{`sum(rate(a[1m])) by (job)`, "a"},
	} {
		got, err := promqlMetricNames(tc.expr)
		require.NoError(t, err, tc.expr)
		assert.Equal(t, strings.Fields(tc.want), got, tc.expr)
	}
	_, err := promqlMetricNames(`sum(rate(a{x="1"}[1m])`)
	assert.Error(t, err, "unbalanced")
}

// promqlMetricNames returns the metric names a PromQL expression selects:
// identifiers that are not functions, aggregations, keywords, label lists
// (by, without, on, ignoring, group_left, group_right), label matchers or
// ranges.
func promqlMetricNames(expr string) ([]string, error) {
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "atan2": true}
	labelLists := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	// Aggregations may be followed by by/without before their parenthesis.
	aggregations := map[string]bool{"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
		"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
		"limitk": true, "limit_ratio": true}
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	skipSpace := func(i int) int {
		for i < len(expr) && strings.IndexByte(" \t\n", expr[i]) >= 0 {
			i++
		}
		return i
	}
	// skipTo returns the index after the close matching the open at i, skipping quoted strings.
	skipTo := func(i int, open, close byte) (int, error) {
		depth := 0
		for ; i < len(expr); i++ {
			switch c := expr[i]; c {
			case '"', '\'', '`':
				j := strings.IndexByte(expr[i+1:], c)
				if j < 0 {
					return 0, fmt.Errorf("unterminated string at %d", i)
				}
				i += j + 1
			case open:
				depth++
			case close:
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("unbalanced %c", open)
	}
	var names []string
	parens := 0
	skipNext := false // the duration after offset
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '{':
			j, err := skipTo(i, '{', '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '"' || c == '\'' || c == '`':
			j := strings.IndexByte(expr[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			i += j + 2
		case c == '$':
			i++
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '{' || expr[i] == '}') {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
			skipNext = false
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case skipNext:
				skipNext = false
			case labelLists[word] && next < len(expr) && expr[next] == '(':
				k, err := skipTo(next, '(', ')')
				if err != nil {
					return nil, err
				}
				j = k
			case word == "offset":
				skipNext = true
			case keywords[word], aggregations[word]:
			case next < len(expr) && expr[next] == '(':
				// a function or an aggregation
			default:
				names = append(names, word)
			}
			i = j
		case c == '(':
			parens++
			i++
		case c == ')':
			parens--
			if parens < 0 {
				return nil, fmt.Errorf("unbalanced ) at %d", i)
			}
			i++
		default:
			i++
		}
	}
	if parens != 0 {
		return nil, errors.New("unbalanced (")
	}
	return names, nil
}

// ---------------------------------------------------------------------------
// Shell scripts

func TestShellScriptsParse(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	scripts, err := filepath.Glob("postgres/*.sh")
	require.NoError(t, err)
	require.NotEmpty(t, scripts)
	for _, s := range scripts {
		out, err := exec.CommandContext(t.Context(), bash, "-n", s).CombinedOutput()
		assert.NoError(t, err, "%s: %s", s, out)
	}
}

// ---------------------------------------------------------------------------

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	return root
}
