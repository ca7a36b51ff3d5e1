package spawner

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/spawnfail"
	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// follow polls the service's task until the server is ready, fails or the
// start timeout passes, and records the outcome. The server itself is
// probed by a readyWatch from the moment the task has an address.
func (m *Manager) follow(ctx context.Context, rec store.Server) {
	bg := context.WithoutCancel(ctx)
	user := rec.User
	var lastState swarm.TaskState
	var lastDetail, probeErr string
	var watch *readyWatch
	var watchAddr string
	defer func() {
		if watch != nil {
			watch.cancel()
		}
	}()
	var ready <-chan string
	tick := time.NewTicker(m.o.ProbeInterval)
	defer tick.Stop()
	for {
		task, found, err := m.spawnTask(ctx, rec.ServiceID)
		switch {
		case ctx.Err() != nil:
		case err != nil && cerrdefs.IsNotFound(err):
			m.serviceVanished(bg, rec)
			return
		case err != nil:
			m.log.Warn("list tasks", "user", user, "err", err)
		case found:
			if msg, failed := taskFailure(task); failed {
				m.fail(bg, rec, msg)
				m.removeService(bg, rec.ServiceID)
				return
			}
			state := task.Status.State
			detail := task.Status.Err
			if detail == "" {
				detail = task.Status.Message
			}
			if state != lastState || detail != lastDetail {
				lastState, lastDetail = state, detail
				m.progress(bg, user, taskProgress(task))
			}
			addr := taskAddr(task, m.o.Spec.Network, m.port())
			switch {
			case addr == "" && state == swarm.TaskStateRunning:
				probeErr = "task has no address on network " + m.o.Spec.Network + " yet"
			case addr != "" && addr != watchAddr:
				if watch != nil {
					watch.cancel()
				}
				watch, watchAddr = m.watchReady(ctx, addr, user, proxyToken(rec), taskStarted(state)), addr
				ready = watch.ready
			case watch != nil && taskStarted(state):
				watch.early.Store(false)
			}
		}
		select {
		case addr := <-ready:
			m.ready(bg, rec, addr)
			return
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), errStopped) {
				m.stoppedWhileStarting(bg, rec)
				return
			}
			if watch != nil {
				if e := watch.err(); e != "" {
					probeErr = e
				}
			}
			msg := fmt.Sprintf("the server did not become ready within %s", m.o.StartTimeout)
			if lastState != "" {
				msg += fmt.Sprintf(" (task %s", lastState)
				if lastDetail != "" {
					msg += ": " + lastDetail
				}
				if lastState == swarm.TaskStateRunning && probeErr != "" {
					msg += "; last readiness check: " + probeErr
				}
				msg += ")"
			}
			if lastState == swarm.TaskStateNew {
				// Docker says nothing when it cannot allocate a task; the
				// usual cause is a users network without a free address.
				msg += " — Docker never allocated the task: the users network may have no free address left (Docker's default /24 holds 253 servers; stack/users-subnet.yml gives it more); ask an admin"
			}
			m.fail(bg, rec, msg+spawnfail.Hint(lastDetail+" "+probeErr))
			m.removeService(bg, rec.ServiceID)
			return
		case <-tick.C:
		}
	}
}

var errStopped = errors.New("server stopped while starting")

func (m *Manager) ready(ctx context.Context, rec store.Server, addr string) {
	now := m.o.Clock()
	rec.State = store.StateRunning
	rec.Addr = addr
	rec.Error = ""
	rec.Started = now
	rec.Ready = now
	if err := m.st.PutServer(ctx, rec); err != nil {
		m.log.Error("record ready server", "user", rec.User, "err", err)
	}
	m.mu.Lock()
	m.targets[rec.User] = target{addr: addr, token: proxyToken(rec)}
	m.mu.Unlock()
	if m.o.Metrics != nil {
		m.o.Metrics.SpawnFinished(now.Sub(rec.Requested), "")
	}
	if m.o.Line != nil {
		if err := m.o.Line.RecordStartDuration(ctx, now.Sub(rec.Requested)); err != nil {
			m.log.Warn("record start duration", "err", err)
		}
	}
	url := BaseURL(rec.User)
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Server ready at " + url, Ready: true, URL: url})
	m.event(ctx, EventReady, rec.User, fmt.Sprintf("ready after %s", now.Sub(rec.Requested).Round(time.Millisecond)))
	m.log.Info("server ready", "user", rec.User, "addr", addr, "after", now.Sub(rec.Requested))
}

// fail records a failed spawn and returns the updated record.
func (m *Manager) fail(ctx context.Context, rec store.Server, msg string) store.Server {
	rec.State = store.StateFailed
	rec.Error = msg
	rec.Addr = ""
	if err := m.st.PutServer(ctx, rec); err != nil {
		m.log.Error("record failed server", "user", rec.User, "err", err)
	}
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Spawn failed: " + msg, Failed: true})
	m.event(ctx, EventFailure, rec.User, msg)
	m.log.Warn("spawn failed", "user", rec.User, "reason", msg)
	if m.o.Metrics != nil {
		if msg == "" {
			msg = "unknown"
		}
		m.o.Metrics.SpawnFinished(m.o.Clock().Sub(rec.Requested), msg)
	}
	return rec
}

// serviceVanished handles a service removed during its spawn: by Stop on
// another replica (the record says stopped) or by hand (it does not).
func (m *Manager) serviceVanished(ctx context.Context, rec store.Server) {
	cur, err := m.getServer(ctx, rec.User)
	if err == nil && cur.State == store.StateStarting && cur.ServiceID == rec.ServiceID {
		m.fail(ctx, rec, "the service "+rec.ServiceName+" was removed while the server was starting")
		return
	}
	m.stoppedWhileStarting(ctx, rec)
}

func (m *Manager) stoppedWhileStarting(ctx context.Context, rec store.Server) {
	m.progress(ctx, rec.User, store.Progress{Progress: 100, Message: "Spawn failed: the server was stopped while starting", Failed: true})
	m.log.Info("server stopped while starting", "user", rec.User)
}
