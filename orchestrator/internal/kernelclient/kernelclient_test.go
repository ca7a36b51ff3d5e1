package kernelclient_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/swarmhub/swarmhub/orchestrator/internal/kernelclient"
	"github.com/swarmhub/swarmhub/orchestrator/internal/testsupport"
)

const python = "/usr/bin/python3"

// startNotebook runs a real Jupyter Notebook server on a free loopback port
// with a token and returns it as a Server that authenticates with the token.
func startNotebook(t *testing.T) kernelclient.Server {
	t.Helper()
	if err := exec.Command(python, "-c", "import notebook, ipykernel").Run(); err != nil {
		t.Skipf("no Jupyter Notebook for %s (%v): apt-get install python3-notebook", python, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	const token = "kernelclient-test-token"
	dir := t.TempDir()
	cmd := exec.Command(python, "-m", "notebook", "--no-browser", "--ip=127.0.0.1", "--port="+strconv.Itoa(port),
		"--port-retries=0", "--allow-root", "--NotebookApp.token="+token, "--notebook-dir="+dir)
	// Keep Jupyter's runtime and config files out of the user's home.
	cmd.Env = append(os.Environ(), "HOME="+dir, "JUPYTER_RUNTIME_DIR="+dir, "JUPYTER_DATA_DIR="+dir,
		"JUPYTER_CONFIG_DIR="+dir, "IPYTHONDIR="+dir)
	log := &testsupport.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("notebook log:\n%s", log)
		}
	})

	s := kernelclient.Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		Header: http.Header{"Authorization": {"token " + token}}}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/status", nil)
		req.Header = s.Header.Clone()
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("notebook exited before serving: %v", err)
		case <-ctx.Done():
			t.Fatalf("notebook not serving on port %d: %v", port, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestExecuteOnRealKernel(t *testing.T) {
	s := startNotebook(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	id, err := s.StartKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := kernelclient.Dial(ctx, s.ChannelsURL(id), s.Header)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	tests := []struct {
		name    string
		code    string
		want    string
		errName string // the exception the kernel reports; "": success
	}{
		{name: "expression result", code: "1+1", want: "2"},
		{name: "stdout then result", code: "print('hi')\n40+2", want: "hi\n42"},
		{name: "no output", code: "x = 3", want: ""},
		{name: "state kept between requests", code: "x*2", want: "6"},
		{name: "exception", code: "print('before')\nundefined_name", want: "before\n", errName: "NameError"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kernelclient.Execute(ctx, conn, kernelclient.Request{Code: tt.code, MsgID: fmt.Sprintf("test-%d", i), Username: "test"})
			if got != tt.want {
				t.Errorf("output %q, want %q", got, tt.want)
			}
			var kerr *kernelclient.Error
			switch {
			case tt.errName == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.errName != "" && (!errors.As(err, &kerr) || kerr.Status != "error" || kerr.Name != tt.errName):
				t.Fatalf("error %v, want a kernel %s", err, tt.errName)
			}
		})
	}

	if err := s.DeleteKernel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKernel(ctx, id); err == nil {
		t.Fatal("deleting a deleted kernel succeeded")
	}
}

func TestStartKernelNeedsCredentials(t *testing.T) {
	s := startNotebook(t)
	s.Header = nil
	if id, err := s.StartKernel(t.Context()); err == nil {
		t.Fatalf("kernel %s started without the token", id)
	}
}
