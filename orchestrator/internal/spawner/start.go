package spawner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/swarmhub/swarmhub/orchestrator/internal/store"
)

// begin starts the user's server, or returns the one already running or
// starting. It returns once the service exists; readiness is followed in the
// background and reported through the progress stream and the record.
// ended, when set, is called once when this spawn is over: at once when
// begin returns without following a spawn, else when the server is ready,
// failed or stopped.
func (m *Manager) begin(ctx context.Context, user string, so StartOptions, ended func()) (store.Server, error) {
	if ended == nil {
		ended = func() {}
	}
	lock, rec, err := m.lockOrCurrent(ctx, user)
	if err != nil || lock == nil {
		ended()
		return rec, err
	}
	var slotKept atomic.Bool
	stopKeep := m.keepLock(lock, user, &slotKept)
	handedOff := false
	defer func() {
		if !handedOff {
			stopKeep()
			m.release(lock, user, false)
			ended()
		}
	}()

	rec, err = m.getServer(ctx, user)
	if err != nil {
		return store.Server{}, err
	}
	if rec.State == store.StateRunning && rec.ServiceName != "" {
		_, _, err := m.d.ServiceInspectWithRaw(ctx, rec.ServiceName, swarm.ServiceInspectOptions{})
		if err == nil {
			return rec, nil
		}
		if !cerrdefs.IsNotFound(err) {
			return store.Server{}, fmt.Errorf("inspect service %s: %w", rec.ServiceName, err)
		}
		// Removed behind our back: start afresh.
		m.log.Info("running server's service is gone; starting again", "user", user, "service", rec.ServiceName)
	}

	serviceName, err := m.o.Namer.ServiceName(user)
	if err != nil {
		return store.Server{}, fmt.Errorf("service name for %s: %w", user, err)
	}
	volumeName, err := m.o.Namer.VolumeName(user)
	if err != nil {
		return store.Server{}, fmt.Errorf("volume name for %s: %w", user, err)
	}
	image := or(so.Image, m.o.Image)

	if m.o.SpawnLimit > 0 {
		ok, err := m.st.AcquireSlot(ctx, user, m.o.SpawnLimit, m.slotTTL(lock))
		if err != nil {
			return store.Server{}, fmt.Errorf("acquire spawn slot: %w", err)
		}
		if !ok {
			return store.Server{}, &BusyError{RetryAfter: m.o.RetryAfter}
		}
		slotKept.Store(true)
	}
	slotHeld := m.o.SpawnLimit > 0
	defer func() {
		if !handedOff && slotHeld {
			stopKeep() // no refresh may bring the slot back after its release
			m.releaseSlot(user)
		}
	}()

	// From here on the spawn must not depend on the caller staying connected.
	bg := context.WithoutCancel(ctx)
	token, err := newToken()
	if err != nil {
		return store.Server{}, err
	}
	now := m.o.Clock()
	rec = store.Server{
		User:        user,
		State:       store.StateStarting,
		ServiceName: serviceName,
		Token:       token,
		Image:       image,
		Instructor:  so.Instructor,
		HubToken:    m.o.Spec.Contract(image) == ContractSingleUser,
		Requested:   now,
	}
	m.Forget(user)
	if err := m.st.ResetProgress(bg, user); err != nil {
		return store.Server{}, fmt.Errorf("reset progress of %s: %w", user, err)
	}
	if err := m.st.PutServer(bg, rec); err != nil {
		return store.Server{}, fmt.Errorf("record server of %s: %w", user, err)
	}
	m.progress(bg, user, store.Progress{Progress: 0, Message: "Server requested"})
	m.event(bg, EventSpawn, user, "image "+image)

	fail := func(msg string) (store.Server, error) {
		rec = m.fail(bg, rec, msg)
		return rec, errors.New(msg)
	}

	if err := m.ensureDirs(user); err != nil {
		return fail(err.Error())
	}
	spec, err := BuildSpec(Request{
		User: user, ServiceName: serviceName, VolumeName: volumeName,
		Token: token, Image: image, Instructor: so.Instructor,
	}, m.o.Spec)
	if err != nil {
		return fail(err.Error())
	}
	if err := m.checkVolumes(bg, spec); err != nil {
		return fail(err.Error())
	}

	m.progress(bg, user, store.Progress{Progress: 10, Message: "Creating service " + serviceName})
	resp, err := m.d.ServiceCreate(bg, spec, swarm.ServiceCreateOptions{})
	switch {
	case err == nil:
		rec.ServiceID = resp.ID
	case isNameConflict(err):
		// Another replica, or a spawn before a restart, created it: adopt it.
		svc, _, ierr := m.d.ServiceInspectWithRaw(bg, serviceName, swarm.ServiceInspectOptions{})
		if ierr != nil {
			return fail(fmt.Sprintf("service %s exists but cannot be inspected: %v", serviceName, ierr))
		}
		if svc.Spec.Labels[LabelUser] != user || svc.Spec.Labels[LabelInstance] != m.instance() {
			// Never take over someone else's service (another hub on the
			// same swarm, or an unrelated service with that name).
			return fail(fmt.Sprintf("a service named %s exists but does not belong to %s on this hub (instance %q); an admin must remove it or set notebook.service_name", serviceName, user, m.instance()))
		}
		rec.ServiceID = svc.ID
		if t, hub := serviceToken(svc); t != "" {
			rec.Token, rec.HubToken = t, hub
		}
		if img := serviceImage(svc); img != "" {
			rec.Image = img
		}
		rec.Instructor = serviceEnv(svc, EnvInstructor) == "1"
		m.log.Info("adopted existing service", "user", user, "service", serviceName, "id", svc.ID)
	default:
		return fail(fmt.Sprintf("create service %s: %v", serviceName, err))
	}
	if err := m.st.PutServer(bg, rec); err != nil {
		m.log.Error("record service id", "user", user, "err", err)
	}
	m.progress(bg, user, store.Progress{Progress: 20, Message: "Service created, waiting for a node to run it"})

	sctx, cancelCause := context.WithCancelCause(bg)
	wctx, cancel := context.WithTimeout(sctx, m.o.StartTimeout)
	sp := &spawn{cancel: cancelCause, done: make(chan struct{})}
	m.mu.Lock()
	m.spawns[user] = sp
	m.mu.Unlock()
	handedOff = true
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			cancel()
			cancelCause(nil)
			stopKeep()
			m.release(lock, user, slotHeld)
			m.mu.Lock()
			if m.spawns[user] == sp {
				delete(m.spawns, user)
			}
			m.mu.Unlock()
			close(sp.done)
			ended()
		}()
		m.follow(wctx, rec)
	}()
	return rec, nil
}

func isNameConflict(err error) bool {
	if cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "name conflicts with an existing object") || strings.Contains(msg, "AlreadyExists")
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate server token: %w", err)
	}
	return hex.EncodeToString(b), nil
}
