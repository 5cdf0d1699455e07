package controllers

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	integrationsv1 "github.com/ss3dev/integration-operator/api/v1"
)

func TestSigningStateRotateAndExpire(t *testing.T) {
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	s := signingStateFrom(map[string]string{keyCurrentSecret: "a"})
	s.rotate("b", now.Add(time.Hour))
	d := s.data()
	if d[keyCurrentSecret] != "b" || d[keyPreviousSecret] != "a" || d[keyPreviousExpiresAt] != "2026-11-23T09:00:00Z" {
		t.Fatalf("after rotate: %v", d)
	}
	round := signingStateFrom(d)
	if round.expire(now.Add(59 * time.Minute)) {
		t.Fatal("expired early")
	}
	if !round.expire(now.Add(time.Hour)) || round.previous != "" || len(round.data()) != 1 {
		t.Fatalf("should expire at the deadline: %+v", round)
	}
	// A previous secret without a readable deadline is dropped, not kept forever.
	if s := signingStateFrom(map[string]string{keyCurrentSecret: "a", keyPreviousSecret: "b"}); s.previous != "" {
		t.Fatal("kept a previous secret with no expiry")
	}
}

func TestSameSecretData(t *testing.T) {
	a := map[string]string{"secret": "x", "previous": "y"}
	if !sameSecretData(a, map[string]string{"previous": "y", "secret": "x"}) {
		t.Fatal("equal maps differ")
	}
	for _, b := range []map[string]string{{"secret": "x"}, {"secret": "x", "previous": "z"}, {"secret": "x", "other": "y"}} {
		if sameSecretData(a, b) {
			t.Fatalf("%v should differ", b)
		}
	}
}

func TestOwnedSecretNameFitsKubernetesLimits(t *testing.T) {
	if got := ownedSecretName("acme"); got != "acme-signing-secret" {
		t.Fatal(got)
	}
	long := strings.Repeat("a", 250)
	got := ownedSecretName(long)
	if len(got) > 253 || !strings.HasSuffix(got, "-signing-secret") {
		t.Fatalf("%d chars: %s", len(got), got)
	}
	if ownedSecretName(long) != got || ownedSecretName(long+"b") == got {
		t.Fatal("long names must map stably and distinctly")
	}
}

func TestSetReadyKeepsTransitionTimeAndOrder(t *testing.T) {
	var conds []metav1.Condition
	setCondition(&conds, 1, trueCondition("A", "ok"))
	setCondition(&conds, 1, falseCondition("B", ReasonVaultUnavailable, "vault down"))
	setReady(&conds, 1, "A", "B")
	if conds[0].Type != integrationsv1.ConditionReady || conds[0].Status != metav1.ConditionFalse || conds[0].Reason != ReasonVaultUnavailable {
		t.Fatalf("Ready should lead and carry B's reason: %+v", conds)
	}
	first := conds[0].LastTransitionTime
	conds[0].LastTransitionTime = metav1.NewTime(first.Add(-time.Hour))
	setReady(&conds, 2, "A", "B")
	if !conds[0].LastTransitionTime.Equal(&metav1.Time{Time: first.Add(-time.Hour)}) || conds[0].ObservedGeneration != 2 {
		t.Fatalf("no flip: lastTransitionTime must stay, observedGeneration must move: %+v", conds[0])
	}
	setCondition(&conds, 2, trueCondition("B", "ok"))
	setReady(&conds, 2, "A", "B")
	if conds[0].Status != metav1.ConditionTrue || conds[0].LastTransitionTime.Equal(&metav1.Time{Time: first.Add(-time.Hour)}) {
		t.Fatalf("a flip moves lastTransitionTime: %+v", conds[0])
	}
}
