"""Every alarm kind the defences and monitors raise, mapped to the safety vocabulary a safety
case uses: the functional insufficiency it reveals, the SOTIF (ISO 21448) triggering conditions
that raise it without an attacker, and the deliberate threat (ISO/SAE 21434's domain: SOTIF
leaves attacks to cybersecurity analysis) it is also the symptom of. The report's alarm section
prints the rows of the kinds a campaign raised, so a reviewer can file each alarm under a
known triggering condition.

Kept in core so that a defence's alarm kinds and their meaning live in one table; a test checks
that every kind a defence raises is listed here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlarmKind:
    insufficiency: str  # what the perception gets wrong when this alarm is right
    triggering: str  # benign conditions that raise it (SOTIF triggering conditions)
    threat: str  # the deliberate attack it is the symptom of (ISO/SAE 21434)


ALARM_KINDS: dict[str, AlarmKind] = {
    "doubted_sign": AlarmKind(
        "sign classification outside the classifier's known inputs",
        "a sign type not trained on, a worn, dirty, snow-covered or graffitied face, stickers "
        "left by others, an unusual view or exposure",
        "adversarial sticker or poster on the sign (misclassification)",
    ),
    "unreadable_sign": AlarmKind(
        "a detected sign the classifier cannot name",
        "a sign type not trained on, a sign seen edge-on or from behind, heavy occlusion",
        "a sticker that hides the sign's class (untargeted evasion)",
    ),
    "no_lidar_return": AlarmKind(
        "a camera object with no LiDAR returns where its rays should hit",
        "a picture of an object (billboard, vehicle livery), a reflection, a dark or "
        "absorbent surface, rain or spray absorbing returns",
        "an adversarial patch or poster creating a camera object (appearance attack)",
    ),
    "implausible_size": AlarmKind(
        "a camera object whose LiDAR-measured height does not fit its class",
        "a look-alike of another size (a toy, a mural), a mismatched association behind "
        "an occluder",
        "a printed object or patch faking a class",
    ),
    "no_surface": AlarmKind(
        "a camera object whose LiDAR returns lie on no single surface",
        "an object seen through a gap or foliage, a box straddling two objects",
        "a camera phantom placed over a background",
    ),
    "sign_size": AlarmKind(
        "a sign reading whose LiDAR-measured face size does not fit its class",
        "a non-standard sign (temporary, oversized, reduced), a sign on a vehicle",
        "a sticker turning a sign into a class of another size",
    ),
    "sign_mounting": AlarmKind(
        "a sign reading mounted at a height no such sign is",
        "a sign on a vehicle, a billboard or a building, a sign lying on the ground",
        "a printed sign held up or posted where no sign stands",
    ),
    "no_camera_support": AlarmKind(
        "a LiDAR object the camera does not see",
        "darkness, glare or fog blinding the camera, an object hidden from the camera only, "
        "spurious returns from spray or dust",
        "LiDAR spoofing (injected points forming a phantom)",
    ),
    "camera_only": AlarmKind(
        "a road user the camera sees and the LiDAR side does not (the fallback takes it)",
        "a dark, absorbent or wet object returning few points, heavy rain or fog, a road user "
        "beyond the LiDAR's resolution",
        "LiDAR removal or jamming (PRA-style erased returns), or a camera phantom let in",
    ),
    "see_through": AlarmKind(
        "a LiDAR object through which other returns pass",
        "a sparse or transparent object (fence, vegetation), a box fitted too large",
        "LiDAR spoofing (a phantom in front of real returns)",
    ),
    "void": AlarmKind(
        "a sector of missing LiDAR returns on the ground",
        "a black or wet road surface, a puddle, a sensor window blocked by dirt",
        "LiDAR removal (jamming or relay that deletes returns)",
    ),
    "appeared": AlarmKind(
        "an object first detected close to the car",
        "an object emerging from occlusion, a detector's late detection at range limits",
        "a phantom injected near the car (spoofing, projected image)",
    ),
    "vanished": AlarmKind(
        "a tracked object lost while still in view",
        "occlusion by another road user, a missed detection in glare or rain",
        "an object-hiding patch or LiDAR removal",
    ),
    "class_flip": AlarmKind(
        "a tracked object's class changes",
        "a partly occluded or truncated object, an ambiguous class at range",
        "an adversarial patch switching the class in some frames",
    ),
    "implausible_motion": AlarmKind(
        "a tracked object moving faster than any road user",
        "a tracking mismatch between two objects",
        "a spoofed phantom moved between frames",
    ),
}


def alarm_kind(name: str) -> AlarmKind | None:
    """The row of an alarm kind, or None for one not listed (a user's own check)."""
    return ALARM_KINDS.get(name)
