package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// Lifecycle is the scheduled-jobs side the admin API drives: cull, archive
// and reconcile on demand, archive download and restore, and a student's own
// workspace download. Reports are returned as JSON-ready values.
type Lifecycle interface {
	TriggerCull(ctx context.Context) (any, error)
	TriggerReconcile(ctx context.Context) (any, error)
	TriggerArchive(ctx context.Context) error
	ArchiveUser(ctx context.Context, user string) (any, error)
	Runs(ctx context.Context) (any, error)
	OpenArchive(run, user string) (io.ReadCloser, int64, error)
	Restore(ctx context.Context, run, user string, overwrite bool) (string, error)
	StreamWorkspace(ctx context.Context, w io.Writer, user string) error
}

// ErrJobRunning is what a lifecycle trigger returns (wrapped) when the job
// already runs on some replica; cmd maps the scheduler's error onto it.
var ErrJobRunning = errors.New("this job is already running")

// ErrStorageFull means the storage root has no space left.
var ErrStorageFull = errors.New("storage is full")

// ErrArchiveMissing means the run or the user's archive does not exist.
var ErrArchiveMissing = errors.New("no such archive")

var runPattern = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z(-[0-9]+)?$`)

func (s *Server) lifecycleRoutes(api *echo.Group) {
	api.POST("/cull", s.apiCull)
	api.POST("/reconcile", s.apiReconcile)
	api.GET("/archives", s.apiArchives)
	api.POST("/archives", s.apiArchiveNow)
	api.GET("/archives/:run/:file", s.apiArchiveDownload)
	api.POST("/archives/:run/:user/restore", s.apiArchiveRestore)
	api.GET("/users/:name/workspace.tar.gz", s.apiWorkspace)
}

func (s *Server) jobs() (Lifecycle, error) {
	if s.d.Jobs == nil {
		return nil, apiError(http.StatusServiceUnavailable, "scheduled jobs are not configured on this orchestrator")
	}
	return s.d.Jobs, nil
}

func jobError(err error) error {
	if errors.Is(err, ErrJobRunning) {
		return apiError(http.StatusConflict, "this job is already running (on this or another replica); its events will appear in /hub/api/events")
	}
	return err
}

func (s *Server) apiCull(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	id, _ := identityOf(c)
	rep, err := j.TriggerCull(c.Request().Context())
	if err != nil {
		return jobError(err)
	}
	s.event(c.Request().Context(), "cull-triggered", "", id.Actor(), "cull run requested through the API")
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) apiReconcile(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	rep, err := j.TriggerReconcile(c.Request().Context())
	if err != nil {
		return jobError(err)
	}
	return c.JSON(http.StatusOK, rep)
}

func (s *Server) apiArchives(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	runs, err := j.Runs(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"runs": runs})
}

// apiArchiveNow starts a full run (202), or archives one user now when the
// body names one ({"user": "alice"}) and answers with that run's manifest.
func (s *Server) apiArchiveNow(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	id, _ := identityOf(c)
	var body struct {
		User string `json:"user"`
	}
	if err := bindJSON(c, &body); err != nil {
		return err
	}
	if body.User == "" {
		if err := j.TriggerArchive(ctx); err != nil {
			return jobError(err)
		}
		s.event(ctx, "archive-triggered", "", id.Actor(), "full archive run requested through the API")
		return c.JSON(http.StatusAccepted, map[string]any{"message": "archive run started; watch /hub/api/events and /hub/api/archives"})
	}
	user, err := s.d.Namer.Canonical(body.User)
	if err != nil {
		return apiError(http.StatusBadRequest, err.Error())
	}
	m, err := j.ArchiveUser(ctx, user)
	if err != nil {
		s.event(ctx, "archive-failed", user, id.Actor(), err.Error())
		if errors.Is(err, ErrStorageFull) {
			return apiError(http.StatusInsufficientStorage, "the storage root is full, so "+user+"'s archive could not be written; earlier archives are intact. Free space (or lower lifecycle.archive.keep) and try again")
		}
		return fmt.Errorf("archiving %s: %w", user, err)
	}
	s.event(ctx, "archive", user, id.Actor(), "archived on request")
	return c.JSON(http.StatusCreated, m)
}

func (s *Server) archiveParams(c echo.Context, userParam string) (run, user string, err error) {
	run = c.Param("run")
	if !runPattern.MatchString(run) {
		return "", "", apiError(http.StatusBadRequest, "run must look like 2006-01-02T150405Z (see GET /hub/api/archives)")
	}
	user, err = s.d.Namer.Canonical(userParam)
	if err != nil {
		return "", "", apiError(http.StatusBadRequest, err.Error())
	}
	return run, user, nil
}

func (s *Server) apiArchiveDownload(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	file := c.Param("file")
	if !strings.HasSuffix(file, ".tar.gz") {
		return apiError(http.StatusBadRequest, "download NAME.tar.gz")
	}
	run, user, err := s.archiveParams(c, strings.TrimSuffix(file, ".tar.gz"))
	if err != nil {
		return err
	}
	rc, size, err := j.OpenArchive(run, user)
	if err != nil {
		if errors.Is(err, ErrArchiveMissing) {
			return apiError(http.StatusNotFound, fmt.Sprintf("no archive of %s in run %s", user, run))
		}
		return err
	}
	defer rc.Close()
	id, _ := identityOf(c)
	s.event(c.Request().Context(), "archive-download", user, id.Actor(), "downloaded archive "+run)
	h := c.Response().Header()
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.tar.gz"`, user, run))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	return c.Stream(http.StatusOK, "application/gzip", rc)
}

func (s *Server) apiArchiveRestore(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	run, user, err := s.archiveParams(c, c.Param("user"))
	if err != nil {
		return err
	}
	overwrite := c.QueryParam("overwrite") == "true"
	dest, err := j.Restore(c.Request().Context(), run, user, overwrite)
	if err != nil {
		if errors.Is(err, ErrArchiveMissing) {
			return apiError(http.StatusNotFound, fmt.Sprintf("no archive of %s in run %s", user, run))
		}
		if errors.Is(err, ErrRestoreExists) {
			return apiError(http.StatusConflict, "the restore folder exists already in the workspace; pass overwrite=true to replace it")
		}
		return err
	}
	id, _ := identityOf(c)
	s.event(c.Request().Context(), "archive-restore", user, id.Actor(), "restored "+run+" into "+dest)
	return c.JSON(http.StatusOK, map[string]any{"user": user, "run": run, "restored_to": dest})
}

// ErrRestoreExists means the restore target exists and overwrite is off.
var ErrRestoreExists = errors.New("restore folder exists")

// apiWorkspace streams the user's whole workspace as tar.gz, built on the
// fly (no temporary file; excludes as for archives).
func (s *Server) apiWorkspace(c echo.Context) error {
	j, err := s.jobs()
	if err != nil {
		return err
	}
	name, err := s.canonicalParam(c)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-workspace-%s.tar.gz"`, name, time.Now().UTC().Format("20060102-1504")))
	c.Response().WriteHeader(http.StatusOK)
	if err := j.StreamWorkspace(c.Request().Context(), c.Response(), name); err != nil {
		// Headers are gone: the truncated gzip stream tells the client.
		s.log.Warn("workspace download failed midway", "user", name, "err", err)
	}
	return nil
}
