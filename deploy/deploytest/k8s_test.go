package deploytest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of deploy/k8s, decoded strictly (an unknown or
// misplaced field is an error) into the Kubernetes API types.
type manifests struct {
	namespaces   []*corev1.Namespace
	services     []*corev1.Service
	pvcs         []*corev1.PersistentVolumeClaim
	statefulSets []*appsv1.StatefulSet
	deployments  []*appsv1.Deployment
	pdbs         []*policyv1.PodDisruptionBudget
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "deploy", "k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				o := &corev1.Namespace{}
				m.namespaces, obj = append(m.namespaces, o), o
			case "v1 Service":
				o := &corev1.Service{}
				m.services, obj = append(m.services, o), o
			case "v1 PersistentVolumeClaim":
				o := &corev1.PersistentVolumeClaim{}
				m.pvcs, obj = append(m.pvcs, o), o
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				m.statefulSets, obj = append(m.statefulSets, o), o
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, o), o
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				m.pdbs, obj = append(m.pdbs, o), o
			default:
				t.Fatalf("%s: unexpected %s %s", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestKubernetesManifests decodes deploy/k8s with the Kubernetes API types
// and checks what kubectl --dry-run=client cannot: the StatefulSet's
// headless Service, etcd's initial cluster against the pods' DNS names,
// probes on the real health endpoints, non-root pods with read-only root
// file systems and no capabilities, resources on every container, ports
// and volumes that exist, and OSPREY_ variables that are real flags.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.statefulSets) != 1 || len(m.deployments) == 0 || len(m.namespaces) != 1 {
		t.Fatalf("%d StatefulSets, %d Deployments, %d Namespaces; want one StatefulSet of centrals, sensor Deployments and the namespace",
			len(m.statefulSets), len(m.deployments), len(m.namespaces))
	}
	ns := m.namespaces[0].Name
	service := func(name string) *corev1.Service {
		for _, s := range m.services {
			if s.Name == name {
				return s
			}
		}
		return nil
	}

	sts := m.statefulSets[0]
	t.Run("statefulset", func(t *testing.T) {
		if sts.Namespace != ns {
			t.Errorf("namespace %q, want %q", sts.Namespace, ns)
		}
		hs := service(sts.Spec.ServiceName)
		switch {
		case hs == nil:
			t.Fatalf("serviceName %q: no such Service", sts.Spec.ServiceName)
		case hs.Spec.ClusterIP != corev1.ClusterIPNone:
			t.Errorf("Service %s: clusterIP %q, want None (headless)", hs.Name, hs.Spec.ClusterIP)
		case !hs.Spec.PublishNotReadyAddresses:
			t.Errorf("Service %s: publishNotReadyAddresses false: etcd members could not find each other before they are ready", hs.Name)
		}
		replicas := int(*sts.Spec.Replicas)
		if replicas%2 == 0 || replicas < 3 {
			t.Errorf("%d replicas, want an odd etcd quorum of 3 or more", replicas)
		}
		if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("podManagementPolicy %q, want Parallel (the members start together)", sts.Spec.PodManagementPolicy)
		}
		c := sts.Spec.Template.Spec.Containers[0]
		env := envOf(c)
		if f := valueFrom(c, "OSPREY_NODE_NAME"); f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("OSPREY_NODE_NAME must come from metadata.name (the etcd member and gossip name is the pod's)")
		}
		// Secrets come from Secrets, never from the manifest: the URL of
		// the PostgreSQL the nodes share (it holds the password, and a node
		// of a cluster refuses to start without it), the gossip key, the
		// first admin's password.
		for _, name := range []string{"OSPREY_DB_URL", "OSPREY_GOSSIP_KEY", "OSPREY_BOOTSTRAP_ADMIN_PASSWORD"} {
			f := valueFrom(c, name)
			switch {
			case !slices.Contains(envNames(c), name):
				t.Errorf("%s: missing", name)
			case f == nil || f.SecretKeyRef == nil:
				t.Errorf("%s: a value in the manifest; want it from a Secret (valueFrom.secretKeyRef)", name)
			case f.SecretKeyRef.Name == "" || f.SecretKeyRef.Key == "":
				t.Errorf("%s: secretKeyRef %+v: want a Secret's name and key", name, f.SecretKeyRef)
			case f.SecretKeyRef.Optional != nil && *f.SecretKeyRef.Optional:
				t.Errorf("%s: an optional secretKeyRef, but the node refuses to start without it", name)
			}
		}
		var wantMembers, wantJoin []string
		for i := range replicas {
			pod := fmt.Sprintf("%s-%d", sts.Name, i)
			host := fmt.Sprintf("%s.%s.%s.svc.cluster.local", pod, hs.Name, ns)
			wantMembers = append(wantMembers, fmt.Sprintf("%s=https://%s:2380", pod, host))
			wantJoin = append(wantJoin, host+":7946")
		}
		if got := env["OSPREY_ETCD_INITIAL_CLUSTER"]; got != strings.Join(wantMembers, ",") {
			t.Errorf("OSPREY_ETCD_INITIAL_CLUSTER\n got %s\nwant %s", got, strings.Join(wantMembers, ","))
		}
		if got := env["OSPREY_JOIN"]; got != strings.Join(wantJoin, ",") {
			t.Errorf("OSPREY_JOIN\n got %s\nwant %s", got, strings.Join(wantJoin, ","))
		}
		if !selects(sts.Spec.Selector, sts.Spec.Template.Labels) || !selectsMap(hs.Spec.Selector, sts.Spec.Template.Labels) {
			t.Errorf("the StatefulSet's selector or its Service's does not select its pods")
		}
		claims := map[string]bool{}
		for _, vc := range sts.Spec.VolumeClaimTemplates {
			claims[vc.Name] = true
		}
		checkPod(t, "central", sts.Spec.Template.Spec, claims, true)
		checkEnv(t, "StatefulSet "+sts.Name, "central", envNames(c))
	})

	for _, d := range m.deployments {
		t.Run("deployment/"+d.Name, func(t *testing.T) {
			if d.Namespace != ns {
				t.Errorf("namespace %q, want %q", d.Namespace, ns)
			}
			if !selects(d.Spec.Selector, d.Spec.Template.Labels) {
				t.Errorf("selector does not select its pods")
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
				t.Errorf("replicas %v strategy %q: a sensor's identity and spool are one volume: one replica, Recreate", d.Spec.Replicas, d.Spec.Strategy.Type)
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.PersistentVolumeClaim != nil && !slices.ContainsFunc(m.pvcs, func(p *corev1.PersistentVolumeClaim) bool { return p.Name == v.PersistentVolumeClaim.ClaimName }) {
					t.Errorf("volume %s: no PersistentVolumeClaim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
				}
			}
			checkPod(t, "sensor", d.Spec.Template.Spec, nil, false)
			checkEnv(t, "Deployment "+d.Name, "sensor", envNames(d.Spec.Template.Spec.Containers[0]))
		})
	}

	t.Run("services", func(t *testing.T) {
		for _, s := range m.services {
			var pods []corev1.PodTemplateSpec
			pods = append(pods, sts.Spec.Template)
			for _, d := range m.deployments {
				pods = append(pods, d.Spec.Template)
			}
			matched := false
			for _, p := range pods {
				if !selectsMap(s.Spec.Selector, p.Labels) {
					continue
				}
				matched = true
				for _, port := range s.Spec.Ports {
					if port.TargetPort.StrVal != "" && !hasPort(p.Spec, port.TargetPort.StrVal, port.Protocol) {
						t.Errorf("Service %s port %s: no %s container port named %q", s.Name, port.Name, port.Protocol, port.TargetPort.StrVal)
					}
				}
			}
			if !matched {
				t.Errorf("Service %s selects no pod", s.Name)
			}
		}
		for _, p := range m.pdbs {
			if !selects(p.Spec.Selector, sts.Spec.Template.Labels) {
				t.Errorf("PodDisruptionBudget %s does not select the centrals", p.Name)
			}
		}
	})
}

// checkPod checks a pod template: non-root, read-only root, no
// capabilities, resources, probes on /healthz and /readyz at declared
// ports, and mounts of declared volumes.
func checkPod(t *testing.T, what string, spec corev1.PodSpec, claims map[string]bool, startup bool) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("%s: the pod must run as a non-root user (runAsNonRoot, runAsUser)", what)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile RuntimeDefault missing", what)
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for n := range claims {
		volumes[n] = true
	}
	all := append(slices.Clone(spec.InitContainers), spec.Containers...)
	for i, c := range all {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s container %s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL and none added", what, c.Name)
		}
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			t.Errorf("%s container %s runs as root", what, c.Name)
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[r]; !ok {
				t.Errorf("%s container %s: no %s request", what, c.Name, r)
			}
			if _, ok := c.Resources.Limits[r]; !ok {
				t.Errorf("%s container %s: no %s limit", what, c.Name, r)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s container %s mounts %s: no such volume", what, c.Name, vm.Name)
			}
		}
		if i < len(spec.InitContainers) {
			continue
		}
		probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
		if startup {
			probes["startup"] = c.StartupProbe
		}
		for kind, p := range probes {
			wantPath := "/healthz"
			if kind == "readiness" {
				wantPath = "/readyz"
			}
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s container %s: no %s probe over HTTP", what, c.Name, kind)
				continue
			}
			if p.HTTPGet.Path != wantPath {
				t.Errorf("%s container %s: %s probe on %s, want %s", what, c.Name, kind, p.HTTPGet.Path, wantPath)
			}
			if port := p.HTTPGet.Port.StrVal; port == "" || !hasPort(spec, port, corev1.ProtocolTCP) {
				t.Errorf("%s container %s: %s probe on port %v, want a declared named port", what, c.Name, kind, p.HTTPGet.Port.String())
			}
		}
	}
}

func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

func envNames(c corev1.Container) []string {
	var out []string
	for _, e := range c.Env {
		out = append(out, e.Name)
	}
	return out
}

func valueFrom(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom
		}
	}
	return nil
}

func hasPort(spec corev1.PodSpec, name string, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				return true
			}
		}
	}
	return false
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}

func selectsMap(sel, l map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(l))
}
